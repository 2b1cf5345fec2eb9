import Foundation

/// How one host's link on one network is cut.
public enum LinkCut: String, Codable, Sendable {
    /// Switch-side veth down: the host sees NO-CARRIER and the kernel ignores routes over it.
    case carrier
    /// Switch-side veth detached from its bridge (`nomaster`): carrier stays up, nothing gets through.
    case silent
}

/// One cut link, as kept in lab.json.
public struct LinkFault: Codable, Sendable, Equatable {
    public var host: LabHost
    public var net: LabNetwork
    public var cut: LinkCut
}

/// What a lab made and the faults in force: `lab.json` in the lab directory, so separate
/// CLI invocations (and `down` after a crash of the process that made it) share state.
public struct LabRecord: Codable, Sendable, Equatable {
    public var spec: LabSpec
    /// Resolved binary paths actually used.
    public var etcdBinary: String
    public var vigildBinary: String?
    public var token: String
    public var clusterKey: String
    public var etcdClusterToken: String
    public var createdAt: Date
    public var faults: [LinkFault] = []
    /// Partition sides in force (host indexes; 0 = witness); empty when healed. Side 0 keeps the
    /// main bridges (and the root namespace); hosts named in no side stay on side 0.
    public var partition: [[Int]] = []

    public var plan: LabAddressPlan { LabAddressPlan(lab: spec.name, index: spec.index, mode: spec.mode) }
    public var directory: String { spec.baseDirectory + "/" + spec.name }
    public func hostDirectory(_ host: LabHost) -> String { directory + "/" + host.name }

    static func path(directory: String) -> String { directory + "/lab.json" }

    func save() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let data = try encoder.encode(self)
        let target = Self.path(directory: directory)
        let tmp = target + ".tmp"
        try data.write(to: URL(fileURLWithPath: tmp))
        guard rename(tmp, target) == 0 else {
            throw LabError(.commandFailed, "cannot write \(target): \(String(cString: strerror(errno)))")
        }
    }

    static func load(directory: String) throws -> LabRecord {
        let path = path(directory: directory)
        guard let bytes = PlainFile.contents(path) else {
            throw LabError(.notFound, "no lab at \(directory) (\(path) missing): start one with `vigil lab up`")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(LabRecord.self, from: Data(bytes))
        } catch {
            throw LabError(.notFound, "\(path) is unreadable (\(error)): run `vigil lab down` to remove the leftovers")
        }
    }
}
