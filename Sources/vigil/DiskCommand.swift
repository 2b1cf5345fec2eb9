import ArgumentParser

// Placeholder: replaced by the disk work (VigilDisk).
struct DiskCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "disk", abstract: "Create, inspect, check and convert virtual disks (VHDX, raw).")
}
