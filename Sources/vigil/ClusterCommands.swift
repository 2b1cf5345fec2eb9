import ArgumentParser
import Foundation
import VigilClient
import VigilCore

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show quorum, the leader, etcd members, and each node's state and networks.",
        discussion: "Exits 2 when the cluster has no quorum, 3 when no node answers.")
    @OptionGroup var options: ClusterOptions

    func run() async throws {
        try await options.run { client in
            let s: ClusterStatus = try await client.get("/v1/status")
            if options.json { Output.printJSON(s) } else { print(Self.render(s)) }
            if !s.quorum {
                FileHandle.standardError.write(Data("vigil: the cluster has NO QUORUM: \(s.problem ?? "the store does not answer")\n".utf8))
                throw ExitCode(2)
            }
        }
    }

    static func render(_ s: ClusterStatus) -> String {
        var out = "cluster \(s.cluster) (answered by \(s.answeredBy))\n"
        out += "quorum: \(s.quorum ? "yes" : "NO — \(s.problem ?? "store does not answer")")\n"
        out += "leader: \(s.leader?.rawValue ?? "none")\n"
        let healthy = s.etcdMembers.filter(\.healthy).count
        out += "etcd: \(healthy)/\(s.etcdMembers.count) members healthy\n"
        for m in s.etcdMembers {
            out += "  \(m.endpoint)  \(m.healthy ? "healthy" : "UNHEALTHY")\(m.isLeader ? "  (etcd leader)" : "")\n"
        }
        if !s.nodes.isEmpty { out += "\n" + NodesCommand.table(s.nodes) + "\n" }
        let heard = s.nodes.filter { $0.state != .down && !($0.heartbeats ?? [:]).isEmpty }
        if !heard.isEmpty {
            out += "\nheartbeats (what each node hears from its peers, per network):\n"
            for n in heard {
                let peers = (n.heartbeats ?? [:]).sorted { NodeName(unchecked: $0.key) < NodeName(unchecked: $1.key) }.map { peer, links in
                    "\(peer) " + links.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value ? "up" : "DOWN")" }.joined(separator: " ")
                }
                out += "  \(n.name) hears  " + peers.joined(separator: "  |  ") + "\n"
            }
        }
        return out
    }
}

struct NodesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "nodes", abstract: "List the cluster's nodes, or show one.")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "A node name; all nodes when omitted.") var name: String?

    func run() async throws {
        try await options.run { client in
            if let name {
                let n = try NodeName(name)
                let node: NodeStatus = try await client.get("/v1/nodes/\(n.rawValue)")
                if options.json { Output.printJSON(node) } else { print(Self.table([node])) }
            } else {
                let nodes: [NodeStatus] = try await client.get("/v1/nodes")
                if options.json { Output.printJSON(nodes) } else { print(Self.table(nodes)) }
            }
        }
    }

    static func table(_ nodes: [NodeStatus]) -> String {
        Output.table(["NODE", "STATE", "LEADER", "ADDRESS", "CPUS", "MEMORY", "ACCEL", "NETWORKS"], nodes.map { n in
            let nets = n.networks.map { "\($0.name):\($0.up.map { $0 ? "up" : "DOWN" } ?? "?")" }.joined(separator: " ")
            // "tcg: <why not KVM>" is long; the table shows the word, --json the reason.
            let accel = n.accel.map { String($0.prefix { $0 != ":" && $0 != " " }) } ?? "?"
            return [n.name.rawValue, n.state.rawValue, n.isLeader ? "*" : "", n.clusterAddress, "\(n.capacity.cpus)",
                    "\(n.capacity.memoryMiB) MiB", accel, nets]
        })
    }
}

struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Show the cluster event log: what the cluster decided and why.")
    @OptionGroup var options: ClusterOptions
    @Option(help: "How many of the newest events to show first (1…1000).") var limit: Int = 50
    @Flag(help: "Keep printing new events as they are recorded.") var follow = false

    func validate() throws {
        guard (1...1000).contains(limit) else { throw ValidationError("--limit must be 1…1000, got \(limit)") }
    }

    func run() async throws {
        try await options.run { client in
            var page: EventPage = try await client.get("/v1/events?limit=\(limit)")
            if options.json && !follow { Output.printJSON(page.events); return }
            emit(page.events)
            guard follow else { return }
            while true {
                try await Task.sleep(for: .milliseconds(500))
                let q = page.next.map { "&after=\($0.rawValue)" } ?? ""
                do {
                    let more: EventPage = try await client.get("/v1/events?limit=1000\(q)")
                    emit(more.events)
                    if more.next != nil { page.next = more.next }
                } catch let e as ClientError where e.exitCode == 2 || e.exitCode == 3 {
                    FileHandle.standardError.write(Data("vigil: \(e) — still trying\n".utf8))
                }
            }
        }
    }

    func emit(_ events: [StoredEvent]) {
        for e in events {
            if options.json { Output.printJSONLine(e); continue }
            let ev = e.event
            print("\(Output.time(ev.atMillis))  \(ev.severity.rawValue.uppercased().padding(toLength: 7, withPad: " ", startingAt: 0))  \(ev.kind.rawValue.padding(toLength: 22, withPad: " ", startingAt: 0))  \(ev.message)")
        }
        fflush(nil)
    }
}
