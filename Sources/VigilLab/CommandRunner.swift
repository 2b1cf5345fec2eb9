import Foundation

/// Output of a finished command.
public struct CommandResult: Sendable, Codable, Equatable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var succeeded: Bool { status == 0 }
}

/// Runs short-lived commands (ip, sysctl writes, probes) and captures their output.
/// Blocking: the lab's calls are short, and a caller that needs a bound uses `timeout`.
enum CommandRunner {
    /// Full path of `name` on `PATH` (plus the sbin directories), or `name` itself if it contains a slash.
    static func which(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in (path + ":/usr/sbin:/sbin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func resolve(_ name: String) throws -> String {
        guard let path = which(name) else {
            throw LabError(.missingBinary, "'\(name)' not found on PATH: install it (etcd: apt-get install etcd-server etcd-client; ip: iproute2)")
        }
        return path
    }

    /// Runs `args[0]` (looked up on PATH) with the rest as arguments; never throws for a non-zero exit.
    static func run(_ args: [String], input: String? = nil) throws -> CommandResult {
        precondition(!args.isEmpty, "empty command")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try resolve(args[0]))
        process.arguments = Array(args.dropFirst())
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let inPipe = input.map { _ in Pipe() }
        process.standardInput = inPipe ?? FileHandle.nullDevice
        try process.run()
        if let inPipe, let input {
            inPipe.fileHandleForWriting.write(Data(input.utf8))
            try? inPipe.fileHandleForWriting.close()
        }
        // Drain stderr on another thread so neither pipe can fill up and block the child.
        let errData = LockedBox(Data())
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData.value = err.fileHandleForReading.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return CommandResult(
            status: process.terminationStatus,
            stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.value, as: UTF8.self))
    }

    /// Runs and throws `commandFailed` with the command line and its stderr on a non-zero exit.
    @discardableResult
    static func check(_ args: [String], input: String? = nil) throws -> String {
        let r = try run(args, input: input)
        guard r.succeeded else {
            var what = args.joined(separator: " ")
            if let input { what += " <<EOF\n\(input)EOF" }
            throw LabError(.commandFailed, "command failed (exit \(r.status)): \(what)\n\(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return r.stdout
    }
}

/// A value guarded by a lock, for handing results between threads.
final class LockedBox<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: Value
    init(_ value: Value) { _value = value }
    var value: Value {
        get { lock.withLock { _value } }
        set { lock.withLock { _value = newValue } }
    }
}
