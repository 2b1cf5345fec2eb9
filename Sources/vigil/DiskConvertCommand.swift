import ArgumentParser
import VigilDisk

/// `vigil disk convert SRC DST --format vhdx|raw [--type] [--block-size]`
struct DiskConvertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "convert", abstract: "Copy an image into a new one of another format or shape.")

    @Argument(help: "Source image.") var source: String
    @Argument(help: "Destination image (must not exist).") var destination: String
    @Option(help: "Destination format: vhdx or raw.") var format: String = "vhdx"
    @Option(help: "Source format; detected when omitted.") var sourceFormat: String?
    @Option(help: "Destination type for VHDX: fixed or dynamic.") var type: String = "dynamic"
    @OptionGroup var shape: DiskShapeOptions
    @OptionGroup var output: DiskOutputOptions

    func run() async throws {
        try await output.run {
            let report = try await DiskConverter.convert(
                from: source, sourceFormat: try sourceFormat.map(parseFormat), to: destination,
                format: try parseFormat(format), options: try shape.createOptions(type: type, size: 0))
            try output.emit(report, text: "converted \(source) (\(report.sourceFormat.rawValue)) to \(destination) (\(report.destinationFormat.rawValue)): \(report.virtualSize) bytes, \(report.bytesWritten) written")
        }
    }
}
