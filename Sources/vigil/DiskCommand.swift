import ArgumentParser
import Foundation
import VigilDisk

/// `vigil disk …`: create, inspect, check and convert image files directly (no cluster).
struct DiskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "disk",
        abstract: "Create, inspect, check and convert virtual disks (VHDX, raw).",
        subcommands: [DiskCreateCommand.self, DiskInfoCommand.self, DiskCheckCommand.self, DiskConvertCommand.self]
    )
}

/// Options every disk subcommand shares.
struct DiskOutputOptions: ParsableArguments {
    @Flag(help: "Print JSON instead of text.") var json = false

    /// Prints `value` as JSON or as `text`.
    func emit<T: Encodable>(_ value: T, text: String) throws {
        if json {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try enc.encode(value), as: UTF8.self))
        } else {
            print(text)
        }
    }

    /// Runs `body`; a `DiskError` becomes a message (JSON `{"error": …}` with `--json`) and exit code 1.
    func run(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as DiskError {
            if json {
                try emit(["error": error.description], text: "")
            } else {
                FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
            }
            throw ExitCode(1)
        }
    }
}

/// Parses the `--format`, `--type` and size options the create and convert commands share.
struct DiskShapeOptions: ParsableArguments {
    @Option(help: "Block size for VHDX, 1M to 256M, a power of two.") var blockSize: String = "32M"
    @Option(help: "Logical sector size for VHDX: 512 or 4096.") var logicalSectorSize: UInt32 = 512
    @Option(help: "Physical sector size for VHDX: 512 or 4096.") var physicalSectorSize: UInt32 = 4096

    func createOptions(type: String, size: UInt64) throws -> VHDXCreateOptions {
        guard let t = DiskType(rawValue: type) else { throw ValidationError("--type must be fixed or dynamic, not \(type)") }
        let bs = try DiskSize.parse(blockSize)
        guard bs <= UInt64(UInt32.max) else { throw ValidationError("--block-size \(blockSize) is too large") }
        return VHDXCreateOptions(type: t, virtualSize: size, blockSize: UInt32(bs),
                                 logicalSectorSize: logicalSectorSize, physicalSectorSize: physicalSectorSize)
    }
}

func parseFormat(_ text: String) throws -> DiskFormat {
    guard let f = DiskFormat(rawValue: text) else { throw ValidationError("--format must be vhdx or raw, not \(text)") }
    return f
}
