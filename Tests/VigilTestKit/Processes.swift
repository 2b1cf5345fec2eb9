import Foundation

/// The outcome of running a command to completion.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Run a program with arguments, wait (up to `timeout`), capture its output.
public func runProcess(_ path: String, _ args: [String], environment: [String: String]? = nil,
                       timeout: TimeInterval = 60) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Drain both pipes while waiting, so a chatty child never blocks on a full pipe.
    let outData = LockedData(), errData = LockedData()
    let g = DispatchGroup()
    for (pipe, sink) in [(out, outData), (err, errData)] {
        g.enter()
        DispatchQueue.global().async { sink.set(pipe.fileHandleForReading.readDataToEndOfFile()); g.leave() }
    }
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
    if p.isRunning { p.terminate(); Thread.sleep(forTimeInterval: 0.2); if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
    p.waitUntilExit()
    g.wait()
    return ProcessResult(status: p.terminationStatus, stdout: String(decoding: outData.get(), as: UTF8.self),
                         stderr: String(decoding: errData.get(), as: UTF8.self))
}

final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}

/// Poll `condition` every `every` until it holds or `timeout` passes; returns whether it held.
public func eventually(timeout: Duration, every: Duration = .milliseconds(50), _ condition: () async throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return true }
        if ContinuousClock.now >= deadline { return false }
        try? await Task.sleep(for: every)
    }
}

/// Run blocking work (process waits, sleeps) on its own thread, so async tests never
/// tie up the few threads of Swift's cooperative pool (2 on a 2-core machine).
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }.start()
    }
}
