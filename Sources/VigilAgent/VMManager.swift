import Foundation
import VigilCore
import VigilQEMU
import VigilStore

/// VM lifecycle requests as store transactions (the API's side; the leader places,
/// the owner node runs). Every write is a compare-and-swap; a failed request leaves
/// nothing behind in etcd or on disk.
public struct VMManager: AgentPart {
    public let context: AgentContext

    public init(context: AgentContext) { self.context = context }

    /// Why a request was refused.
    public struct Refusal: Error, Equatable, CustomStringConvertible {
        public enum Kind: Equatable, Sendable { case invalid, notFound, conflict }
        public var kind: Kind
        public var message: String
        public var description: String { message }
        static func invalid(_ m: String) -> Refusal { Refusal(kind: .invalid, message: m) }
        static func notFound(_ m: String) -> Refusal { Refusal(kind: .notFound, message: m) }
        static func conflict(_ m: String) -> Refusal { Refusal(kind: .conflict, message: m) }
    }

    public func list() async throws -> [VMInfo] {
        try await VMSnapshot.read(etcd, keys: keys).values
            .map { VMInfo(spec: $0.spec, placement: $0.placement, runtime: $0.runtime) }
            .sorted { $0.spec.name < $1.spec.name }
    }

    public func show(_ raw: String) async throws -> VMInfo {
        let name = try vmName(raw)
        let r = try await etcd.txn([], then: [.get(key: keys.vmSpec(name)), .get(key: keys.vmPlacement(name)), .get(key: keys.vmRuntime(name))])
        guard let spec = r.ranges[0].first.flatMap({ try? $0.decode(VMSpec.self) }) else { throw Refusal.notFound("no VM named '\(name)'") }
        return VMInfo(spec: spec, placement: r.ranges[1].first.flatMap { try? $0.decode(Placement.self) },
                      runtime: r.ranges[2].first.flatMap { try? $0.decode(VMRuntime.self) })
    }

    func vmName(_ raw: String) throws -> VMName {
        do { return try VMName(raw) } catch { throw Refusal.invalid("\(error)") }
    }

    /// Create a VM: its disk file, its spec, a stopped placement and its guest address.
    public func create(_ req: CreateVMRequest) async throws -> VMInfo {
        if let p = req.problem() { throw Refusal.invalid(p) }
        let name = try vmName(req.name)
        if try await etcd.get(keys.vmSpec(name)) != nil { throw Refusal.conflict("a VM named '\(name)' already exists") }
        let nodes = try await etcd.getPrefix(keys.nodesPrefix).kvs.compactMap { try? $0.decode(NodeRecord.self) }
        var preferred: NodeName?
        if let n = req.node {
            guard let node = nodes.first(where: { $0.name.rawValue == n }) else {
                throw Refusal.invalid("unknown node '\(n)'; known: \(nodes.map(\.name.rawValue).sorted().joined(separator: ", "))")
            }
            preferred = node.name
        }
        let (address, gateway) = try await allocateAddress(nodes: nodes)

        // The disk first, under a unique name: if the spec write loses a race it is removed again.
        try FileManager.default.createDirectory(atPath: config.storageDir, withIntermediateDirectories: true)
        let file = "\(name)-\(String(UInt32.random(in: 0...UInt32.max), radix: 16)).raw"
        let path = config.storageDir + "/" + file
        try createSparseFile(path, size: req.diskBytes)
        let spec = VMSpec(name: name, cpus: req.cpus, memoryMiB: req.memoryMiB,
                          disks: [DiskSpec(name: "root", sizeBytes: req.diskBytes, file: file)],
                          haPriority: req.haPriority ?? .medium, antiAffinityGroup: req.antiAffinityGroup, preferredNode: preferred,
                          power: req.start == true ? .running : .stopped, address: address, gateway: gateway, mac: MACAddress.stable(forVM: name.rawValue).description,
                          failback: req.failback)
        var compares: [Compare] = [.absent(keys.vmSpec(name)), .absent(keys.vmPlacement(name))]
        var ops: [TxnOp] = [try .putJSON(keys.vmSpec(name), spec), try .putJSON(keys.vmPlacement(name), Placement(node: nil, epoch: 0, phase: .stopped))]
        if let address {
            compares.append(.absent(keys.ipam(address)))
            ops.append(.put(keys.ipam(address), name.rawValue))
        }
        let ok: Bool
        do { ok = try await etcd.txn(compares, then: ops).succeeded }
        catch { try? FileManager.default.removeItem(atPath: path); throw error }
        guard ok else {
            try? FileManager.default.removeItem(atPath: path)
            throw Refusal.conflict("a VM named '\(name)' was created at the same time, or its address \(address ?? "") was taken; try again")
        }
        try? await events.record(ClusterEvent(kind: .vmCreated, severity: .info, reporter: config.node, vm: name.rawValue,
                                              message: "\(name) created: \(spec.cpus) CPUs, \(spec.memoryMiB) MiB, disk \(req.diskBytes >> 20) MiB, HA \(spec.haPriority.rawValue)\(address.map { ", address \($0)" } ?? "")"))
        return VMInfo(spec: spec, placement: Placement(node: nil, epoch: 0, phase: .stopped), runtime: nil)
    }

    /// Ask for the VM to run (`running`) or stop (`stopped`, with a grace period; 0 kills).
    public func setPower(_ raw: String, _ power: PowerState, graceSeconds: Int? = nil) async throws -> VMInfo {
        let name = try vmName(raw)
        if let g = graceSeconds, !(0...3600).contains(g) { throw Refusal.invalid("grace must be 0…3600 seconds, got \(g)") }
        for _ in 0..<5 {
            guard let kv = try await etcd.get(keys.vmSpec(name)), var spec = try? kv.decode(VMSpec.self) else {
                throw Refusal.notFound("no VM named '\(name)'")
            }
            spec.power = power
            if let g = graceSeconds { spec.stopGraceSeconds = g }
            var compares: [Compare] = [.modRevision(keys.vmSpec(name), equals: kv.modRevision)]
            var ops: [TxnOp] = [try .putJSON(keys.vmSpec(name), spec)]
            // Starting a VM the failover policy gave up on is the operator's reset: it
            // is placed afresh, with a clean failover history.
            if power == .running, let pkv = try await etcd.get(keys.vmPlacement(name)),
               let p = try? pkv.decode(Placement.self), p.phase == .failed {
                compares.append(.modRevision(keys.vmPlacement(name), equals: pkv.modRevision))
                ops.append(try .putJSON(keys.vmPlacement(name), Placement(node: p.node, epoch: p.epoch, phase: .stopped)))
            }
            if try await etcd.txn(compares, then: ops).succeeded {
                return try await show(name.rawValue)
            }
        }
        throw Refusal.conflict("\(name) kept changing; try again")
    }

    /// Delete a VM that is not running: its keys, its address and its disk.
    public func delete(_ raw: String) async throws {
        let name = try vmName(raw)
        let r = try await etcd.txn([], then: [.get(key: keys.vmSpec(name)), .get(key: keys.vmPlacement(name))])
        guard let specKV = r.ranges[0].first, let spec = try? specKV.decode(VMSpec.self) else { throw Refusal.notFound("no VM named '\(name)'") }
        let placementKV = r.ranges[1].first
        if let p = placementKV.flatMap({ try? $0.decode(Placement.self) }), p.phase == .placed {
            throw Refusal.conflict("\(name) is \(spec.power == .running ? "running" : "stopping") on \(p.node?.rawValue ?? "?"); stop it first ('vigil vm stop \(name)' or 'vigil vm kill \(name)')")
        }
        var ops: [TxnOp] = [.delete(key: keys.vmSpec(name)), .delete(key: keys.vmPlacement(name)), .delete(key: keys.vmRuntime(name))]
        if let a = spec.address { ops.append(.delete(key: keys.ipam(a))) }
        let ok = try await etcd.txn([.modRevision(keys.vmSpec(name), equals: specKV.modRevision),
                                     .modRevision(keys.vmPlacement(name), equals: placementKV?.modRevision ?? 0)], then: ops).succeeded
        guard ok else { throw Refusal.conflict("\(name) changed while deleting; try again") }
        for d in spec.disks { try? FileManager.default.removeItem(atPath: config.storageDir + "/" + d.file) }
        try? await events.record(ClusterEvent(kind: .vmDeleted, severity: .info, reporter: config.node, vm: name.rawValue, message: "\(name) deleted with its disk"))
    }

    /// The first free guest address (.100–.199) on the client network, if there is one.
    func allocateAddress(nodes: [NodeRecord]) async throws -> (String?, String?) {
        guard let client = nodes.flatMap(\.networks).first(where: { $0.role == .client }) else { return (nil, nil) }
        let octets = client.address.split(separator: ".")
        guard octets.count == 4 else { return (nil, nil) }
        let base = octets.prefix(3).joined(separator: ".")
        let taken = Set(try await etcd.getPrefix(keys.ipamPrefix).kvs.compactMap { keys.name(of: $0.key, under: keys.ipamPrefix) })
        for host in 100...199 where !taken.contains("\(base).\(host)") {
            return ("\(base).\(host)", nil)
        }
        throw Refusal.conflict("no free guest address left on the client network \(base).0/\(client.prefix)")
    }

    func createSparseFile(_ path: String, size: Int64) throws {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0o600)
        guard fd >= 0 else { throw Refusal.conflict("cannot create disk \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard ftruncate(fd, off_t(size)) == 0 else {
            let err = String(cString: strerror(errno))
            unlink(path)
            throw Refusal.invalid("cannot size disk \(path) to \(size) bytes: \(err)")
        }
    }
}
