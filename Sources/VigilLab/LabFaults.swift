import Foundation

/// Fault helpers: links, partitions, processes, whole hosts.
extension Lab {
    // MARK: Commands in a host

    /// Runs a command in the host's namespace (loopback mode: on this machine) and captures its output.
    public func exec(host: LabHost, _ args: [String]) throws -> CommandResult {
        try checkHost(host)
        guard !args.isEmpty else { throw LabError(.invalidSpec, "exec needs a command") }
        if let ns = namespace(host) { return try CommandRunner.run(["ip", "netns", "exec", ns] + args) }
        return try CommandRunner.run(args)
    }

    /// True when a TCP connection from `host` to `address:port` is accepted or refused (the
    /// peer answered) within `timeout`; false when it times out or the network is unreachable.
    public func canReach(from host: LabHost, address: String, port: Int, timeout: Duration = .seconds(2)) throws -> Bool {
        let seconds = String(format: "%.3f", timeout.seconds)
        let script = "exec 3<>/dev/tcp/\(address)/\(port) && echo open"
        let r = try exec(host: host, ["timeout", "-s", "KILL", seconds, "bash", "-c", script])
        return r.stdout.contains("open") || r.stderr.contains("Connection refused")
    }

    /// True when a TCP connection from the root namespace (the CLI's side) to `address:port` is
    /// accepted or refused within `timeout`.
    public func rootCanReach(address: String, port: Int, timeout: Duration = .seconds(1)) -> Bool {
        HTTPProbe.answers(host: address, port: port, timeout: timeout)
    }

    /// The interface the kernel of `host` uses now to reach `address` (`ip route get`).
    public func routeDevice(from host: LabHost, to address: String) throws -> String? {
        let r = try exec(host: host, ["ip", "route", "get", address])
        let words = r.stdout.split(separator: " ").map(String.init)
        guard r.succeeded, let i = words.firstIndex(of: "dev"), i + 1 < words.count else { return nil }
        return words[i + 1]
    }

    /// Carrier of the host's own interface on `net`, as the host sees it (`/sys/class/net/X/carrier`).
    public func hasCarrier(host: LabHost, net: LabNetwork) throws -> Bool {
        let r = try exec(host: host, ["cat", "/sys/class/net/\(plan.hostDevice(net))/carrier"])
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "1"
    }

    // MARK: Links

    /// Cuts one host's link on one network: with carrier loss (switch-side veth down), or
    /// silently (switch-side veth detached from its bridge, carrier stays up).
    public func cut(host: LabHost, net: LabNetwork, silent: Bool = false) throws {
        try changeLinks { record in
            try checkLink(host, net)
            record.faults.removeAll { $0.host == host && $0.net == net }
            record.faults.append(LinkFault(host: host, net: net, cut: silent ? .silent : .carrier))
        }
    }

    /// Undoes `cut` for that host and network (no-op if it was not cut).
    public func restore(host: LabHost, net: LabNetwork) throws {
        try changeLinks { record in
            try checkLink(host, net)
            record.faults.removeAll { $0.host == host && $0.net == net }
        }
    }

    /// Splits the lab into sides that reach only themselves on every network, e.g. `[[1, 2], [3]]`.
    /// Host indexes; 0 is the witness. Machines named in no side stay with the first side, which
    /// also keeps the root namespace (the CLI path). Replaces any partition in force.
    public func partition(_ sides: [[Int]]) throws {
        try changeLinks { record in
            var seen = Set<Int>()
            for index in sides.joined() {
                guard record.spec.machines.contains(LabHost(index)) else {
                    throw LabError(.noSuchTarget, "partition names host \(LabHost(index)), which lab '\(name)' does not have (hosts n1…n\(spec.nodes)\(spec.hasWitness ? ", witness 0" : ""))")
                }
                guard seen.insert(index).inserted else {
                    throw LabError(.invalidSpec, "partition names host \(LabHost(index)) twice")
                }
            }
            record.partition = sides.filter { !$0.isEmpty }
        }
    }

    /// Ends any partition (link cuts stay).
    public func heal() throws {
        try changeLinks { $0.partition = [] }
    }

    /// Reinstalls every host's static routes to its peers' cluster addresses (cluster1 metric 10,
    /// cluster2 metric 20), undoing route changes made since `up`.
    public func resetRoutes() throws {
        try requireNamespaces("resetting routes")
        try LabTopology.resetRoutes(current())
    }

    private func changeLinks(_ change: (inout LabRecord) throws -> Void) throws {
        try requireNamespaces("link faults")
        var record = try current()
        try change(&record)
        try LabTopology.applyLinks(record)
        try record.save()
    }

    private func checkLink(_ host: LabHost, _ net: LabNetwork) throws {
        try checkHost(host)
        guard plan.networks(of: host).contains(net) else {
            throw LabError(.noSuchTarget, "\(host) has no \(net) link (the witness has cluster1 and cluster2 only)")
        }
    }

    func checkHost(_ host: LabHost) throws {
        guard spec.machines.contains(host) else {
            throw LabError(.noSuchTarget, "lab '\(name)' has no host \(host): its hosts are n1…n\(spec.nodes)\(spec.hasWitness ? " and the witness w" : "")")
        }
    }

    private func requireNamespaces(_ what: String) throws {
        guard spec.mode == .namespaces else {
            throw LabError(.unsupportedInLoopback, "lab '\(name)' runs in loopback mode: \(what) need network namespaces (run `vigil lab up` as root without --loopback)")
        }
    }

    // MARK: Processes

    /// The live pid of a host's vigild or etcd member, nil if not running.
    public func pid(host: LabHost, process: LabProcess) -> Int32? { LabDaemons.pid(record, host, process) }

    /// Sends `signal` (SIGKILL, SIGSTOP, SIGCONT, …) to a host's vigild or etcd member.
    public func signal(host: LabHost, process: LabProcess, _ signal: Int32) throws {
        try checkHost(host)
        guard let pid = pid(host: host, process: process) else {
            throw LabError(.noSuchTarget, "\(process) on \(host) is not running (no live pid in \(LabDaemons.pidFile(record, host, process)))")
        }
        guard kill(pid, signal) == 0 else {
            throw LabError(.commandFailed, "kill(\(pid), \(signal)) for \(process) on \(host) failed: \(String(cString: strerror(errno)))")
        }
        // Return once the signal took effect, so a caller can check the state right after.
        switch signal {
        case SIGKILL: LabDaemons.killAndWait([pid])
        case SIGSTOP: LabDaemons.waitForState(pid) { $0 == "T" || $0 == nil }
        case SIGCONT: LabDaemons.waitForState(pid) { $0 != "T" }
        default: break
        }
    }

    /// (Re)starts the etcd member of `host` with its existing data directory.
    @discardableResult
    public func startEtcd(host: LabHost) throws -> Int32 {
        try checkHost(host)
        guard spec.etcdMembers.contains(host) else {
            throw LabError(.noSuchTarget, "\(host) runs no etcd member (members: \(spec.etcdMembers.map(\.name).joined(separator: " ")))")
        }
        return try LabDaemons.start(record, host, .etcd)
    }

    /// (Re)starts the agent of `host`.
    @discardableResult
    public func startVigild(host: LabHost) throws -> Int32 {
        try checkHost(host)
        guard !host.isWitness else { throw LabError(.noSuchTarget, "the witness runs no agent") }
        return try LabDaemons.start(record, host, .vigild)
    }

    /// Kills a whole host: SIGKILL to every process in its namespace (its vigild, its etcd member,
    /// later its QEMUs) and to its pidfile processes; returns once they are gone. Links stay as they are.
    public func killHost(host: LabHost) throws {
        try checkHost(host)
        var pids = LabProcess.allCases.compactMap { pid(host: host, process: $0) }
        if let ns = namespace(host) { pids += LabDaemons.namespacePids(ns) }
        LabDaemons.killAndWait(pids)
        // A QEMU that vigild was forking as it died is not in the first list: look again
        // until the namespace is empty (a dead host runs nothing).
        guard let ns = namespace(host) else { return }
        for _ in 0..<20 {
            let left = LabDaemons.namespacePids(ns)
            if left.isEmpty { return }
            LabDaemons.killAndWait(left)
        }
    }
}
