import Foundation

/// A lab as it is now: for `vigil lab status`.
public struct LabStatus: Codable, Sendable {
    public struct Host: Codable, Sendable {
        public var name: String
        public var clusterAddress: String
        public var namespace: String?
        public var namespaceExists: Bool?
        public var etcdPid: Int32?
        public var etcdState: String?
        public var vigildPid: Int32?
        public var vigildState: String?
        public var watchdogPid: Int32?
        public var watchdogState: String?
    }

    public var name: String
    public var index: Int
    public var mode: LabMode
    public var directory: String
    public var etcdEndpoints: [String]
    public var apiEndpoints: [String]
    public var hosts: [Host]
    public var faults: [LinkFault]
    public var partition: [[Int]]
}

extension Lab {
    public func status() throws -> LabStatus {
        let record = (try? current()) ?? record
        let namespaces = spec.mode == .namespaces ? Set((try? LabTopology.namespaces()) ?? []) : []
        func describe(_ pid: Int32?) -> String? {
            guard let pid else { return nil }
            return LabDaemons.state(pid) == "T" ? "stopped" : "running"
        }
        let hosts = spec.machines.map { m in
            let etcd = pid(host: m, process: .etcd)
            let vigild = pid(host: m, process: .vigild)
            let watchdog = pid(host: m, process: .watchdog)
            return LabStatus.Host(
                name: m.name, clusterAddress: clusterAddress(m), namespace: namespace(m),
                namespaceExists: namespace(m).map(namespaces.contains),
                etcdPid: etcd, etcdState: spec.etcdMembers.contains(m) ? describe(etcd) ?? "down" : nil,
                vigildPid: vigild, vigildState: m.isWitness || record.vigildBinary == nil ? nil : describe(vigild) ?? "down",
                watchdogPid: watchdog, watchdogState: m.isWitness || record.vigildBinary == nil ? nil : describe(watchdog) ?? "down")
        }
        return LabStatus(
            name: name, index: spec.index, mode: spec.mode, directory: directory,
            etcdEndpoints: etcdEndpoints, apiEndpoints: apiEndpoints, hosts: hosts,
            faults: record.faults, partition: record.partition)
    }
}
