import Foundation
import VigilCore

/// Reads whether this host's own links are up, per configured network, from the
/// kernel: the interface that holds the network's address, and its carrier
/// (`IFF_RUNNING`). A silent loss (carrier up, nothing gets through) is invisible
/// here; the heartbeat mesh sees that.
public struct LinkMonitor: Sendable {
    public let networks: [NetworkAttachment]
    public init(networks: [NetworkAttachment]) { self.networks = networks }

    public func read() -> [String: Bool] {
        var byAddress: [String: Bool] = [:]
        var ifap: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&ifap) == 0, let first = ifap else { return [:] }
        defer { freeifaddrs(ifap) }
        var p: UnsafeMutablePointer<ifaddrs>? = first
        while let cur = p {
            defer { p = cur.pointee.ifa_next }
            guard let sa = cur.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            var addr = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            var buf = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &addr, &buf, socklen_t(INET_ADDRSTRLEN))
            let flags = cur.pointee.ifa_flags
            let up = flags & UInt32(IFF_UP) != 0 && flags & UInt32(IFF_RUNNING) != 0
            byAddress[String(cString: buf)] = up
        }
        var out: [String: Bool] = [:]
        for n in networks { out[n.name] = byAddress[n.address] ?? false }
        return out
    }
}
