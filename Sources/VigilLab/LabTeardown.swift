import Foundation

/// What `down` removed.
public struct LabTeardownReport: Codable, Sendable, Equatable {
    public var name: String
    public var killedPids: [Int32] = []
    public var deletedNamespaces: [String] = []
    public var deletedLinks: [String] = []
    public var deletedRoutes: [String] = []
    public var removedDirectory: String?
    /// True when nothing of the lab was left.
    public var wasAbsent: Bool { killedPids.isEmpty && deletedNamespaces.isEmpty && deletedLinks.isEmpty && deletedRoutes.isEmpty && removedDirectory == nil }
}

extension Lab {
    /// Removes this lab (same as `Lab.down(name:)`).
    @discardableResult
    public func down() throws -> LabTeardownReport {
        try Lab.down(name: name, baseDirectory: spec.baseDirectory)
    }

    /// Removes everything lab `name` made, from lab.json if it is there and from leftovers if not
    /// (after a crash): kills the processes of its pidfiles and every process still in its
    /// namespaces, deletes the root-namespace veths peered with its namespaces (and those named in
    /// lab.json), deletes its namespaces (taking their veths along), removes its directory
    /// and, for `demo`, /run/vigil/client.yaml. Idempotent: a missing lab is not an error.
    @discardableResult
    public static func down(name: String, baseDirectory: String = LabSpec.defaultBaseDirectory) throws -> LabTeardownReport {
        guard LabSpec.isValidName(name) else {
            throw LabError(.invalidSpec, "lab name '\(name)' is invalid: use [a-z][a-z0-9-]{0,30}")
        }
        var report = LabTeardownReport(name: name)
        let directory = baseDirectory + "/" + name
        let record = try? LabRecord.load(directory: directory)

        // 1. Processes from pidfiles (only those whose command line still names this lab's directory).
        let pidfiles = pidFiles(in: directory)
        let owned = pidfiles.compactMap(LabDaemons.readPid).filter { LabDaemons.isAlive($0, owner: directory) }
        LabDaemons.killAndWait(owned)
        report.killedPids += owned

        // 2. Namespaces with this lab's exact names (and their root-namespace veths), after killing whatever still runs in them.
        if Lab.namespacesAvailable {
            let plan = LabAddressPlan(lab: name, index: record?.spec.index ?? 0, mode: .namespaces)
            let namespaces = try LabTopology.namespaces().filter(plan.ownsNamespace)
            // Root-namespace veths first: a deleted namespace is destroyed asynchronously, and
            // its veth peers in the root namespace would linger for a moment.
            var rootLinks = try LabTopology.rootLinks(peeredWith: namespaces)
            if let record, record.spec.mode == .namespaces {
                let present = try LabTopology.links(in: nil)
                rootLinks += LabAddressPlan.rootNetworks.map(record.plan.rootDevice).filter { present.contains($0) && !rootLinks.contains($0) }
            }
            for link in rootLinks {
                _ = try CommandRunner.run(["ip", "link", "del", link])
                report.deletedLinks.append(link)
            }
            // The root namespace's `unreachable` route for the lab's /21; the index comes from
            // lab.json or, without it, from the root veths' names (`vl<L>-c1`).
            var indexes = Set(rootLinks.compactMap(Self.labIndex(fromRootLink:)))
            if let record, record.spec.mode == .namespaces { indexes.insert(record.spec.index) }
            for index in indexes {
                let block = LabAddressPlan(lab: name, index: index, mode: .namespaces).block
                let r = try CommandRunner.run(["ip", "route", "del", "unreachable", block])
                if r.succeeded { report.deletedRoutes.append("unreachable \(block)") }
            }
            for ns in namespaces {
                let pids = LabDaemons.namespacePids(ns)
                LabDaemons.killAndWait(pids)
                report.killedPids += pids
                let r = try CommandRunner.run(["ip", "netns", "del", ns])
                if !r.succeeded, (try LabTopology.namespaces()).contains(ns) {
                    throw LabError(.commandFailed, "cannot delete namespace \(ns): \(r.stderr)")
                }
                report.deletedNamespaces.append(ns)
            }
        }

        // 3. Files.
        LabConfigFiles.removeRunClientConfig(lab: name)
        if FileManager.default.fileExists(atPath: directory) {
            try FileManager.default.removeItem(atPath: directory)
            report.removedDirectory = directory
        }
        return report
    }

    /// `vl12-c1` → 12.
    static func labIndex(fromRootLink link: String) -> Int? {
        guard link.hasPrefix("vl"), let dash = link.firstIndex(of: "-") else { return nil }
        return Int(link[link.index(link.startIndex, offsetBy: 2)..<dash])
    }

    /// `<dir>/<machine>/*.pid`.
    static func pidFiles(in directory: String) -> [String] {
        let fm = FileManager.default
        let machines = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
        return machines.flatMap { m in
            ((try? fm.contentsOfDirectory(atPath: "\(directory)/\(m)")) ?? [])
                .filter { $0.hasSuffix(".pid") }
                .map { "\(directory)/\(m)/\($0)" }
        }
    }
}
