import ArgumentParser

// Placeholder: replaced by the lab work (VigilLab).
struct LabCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "lab", abstract: "Test hosts on this machine (network namespaces).")
}
