import ArgumentParser

/// `vigil`: the operator's CLI. Cluster commands talk to any node's REST API;
/// `lab` builds test hosts on this machine; `disk` works on image files directly.
@main
struct VigilCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil",
        abstract: "Operate a Vigil failover cluster.",
        subcommands: [
            StatusCommand.self, NodesCommand.self, EventsCommand.self,
            VMCommand.self, LabCommand.self, DiskCommand.self, NodeCommand.self,
        ]
    )
}
