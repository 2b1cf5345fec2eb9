import ArgumentParser
import VigilDisk

/// `vigil disk create PATH --format vhdx|raw --type fixed|dynamic --size SIZE [--block-size SIZE]`
struct DiskCreateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create an empty disk image.")

    @Argument(help: "Path of the new image (must not exist).") var path: String
    @Option(help: "vhdx or raw.") var format: String = "vhdx"
    @Option(help: "fixed (all blocks allocated now) or dynamic (on first write).") var type: String = "dynamic"
    @Option(help: "Virtual size, e.g. 10G, 512M, 1T.") var size: String
    @OptionGroup var shape: DiskShapeOptions
    @OptionGroup var output: DiskOutputOptions

    func run() async throws {
        try await output.run {
            let fmt = try parseFormat(format)
            let options = try shape.createOptions(type: type, size: try DiskSize.parse(size))
            try DiskImage.create(path: path, format: fmt, options: options)
            let info = try DiskInfo.inspect(path: path, format: fmt)
            try output.emit(info, text: "created \(path)\n" + info.text)
        }
    }
}
