import Foundation
import Synchronization
import VigilCore

/// A minimal two-network test topology of our own (this test target does not link
/// VigilLab): host namespaces `<prefix>-n<i>` with `cluster1`/`cluster2` veths into bridges
/// `c1`/`c2` of `<prefix>-sw`, a cluster address on `lo`, and lab-style host routes to each
/// peer's cluster address (cluster1 metric 10, cluster2 metric 20, `src` own cluster
/// address). Addresses come from lab index 13's block (10.77.104.0/21) and stay inside the
/// namespaces. `remove()` deletes every namespace (and with them every veth).
struct NetnsTopology {
    let prefix: String
    let hosts: [Int]

    init(prefix: String, hosts: Int) { self.prefix = prefix; self.hosts = Array(1...hosts) }

    var switchNamespace: String { "\(prefix)-sw" }
    func namespace(_ host: Int) -> String { "\(prefix)-n\(host)" }
    func address(_ host: Int, network: Int) -> String { "10.77.\(104 + network).\(host)" }
    func clusterAddress(_ host: Int) -> String { "10.77.110.\(host)" }

    func record(_ host: Int) -> NodeRecord {
        NodeRecord(name: NodeName(unchecked: "n\(host)"), clusterAddress: clusterAddress(host), apiPort: 7480, networks: [
            NetworkAttachment(name: "cluster1", role: .cluster, address: address(host, network: 1), prefix: 24),
            NetworkAttachment(name: "cluster2", role: .cluster, address: address(host, network: 2), prefix: 24),
        ], capacity: Capacity(cpus: 1, memoryMiB: 512))
    }

    func create() throws {
        try ip(["netns", "add", switchNamespace])
        for bridge in ["c1", "c2"] {
            try ip(["-n", switchNamespace, "link", "add", bridge, "type", "bridge"])
            try ip(["-n", switchNamespace, "link", "set", bridge, "up"])
        }
        for host in hosts {
            let ns = namespace(host)
            try ip(["netns", "add", ns])
            try ip(["-n", ns, "link", "set", "lo", "up"])
            // As in the lab: the kernel skips routes over a link without carrier.
            try ip(["netns", "exec", ns, "sh", "-c",
                    "echo 1 > /proc/sys/net/ipv4/conf/all/ignore_routes_with_linkdown; echo 1 > /proc/sys/net/ipv4/conf/default/ignore_routes_with_linkdown"])
            try ip(["-n", ns, "addr", "add", "\(clusterAddress(host))/32", "dev", "lo"])
            for net in 1...2 {
                let sw = "n\(host)-c\(net)"
                try ip(["-n", switchNamespace, "link", "add", sw, "type", "veth", "peer", "name", "cluster\(net)", "netns", ns])
                try ip(["-n", switchNamespace, "link", "set", sw, "master", "c\(net)", "up"])
                try ip(["-n", ns, "addr", "add", "\(address(host, network: net))/24", "dev", "cluster\(net)"])
                try ip(["-n", ns, "link", "set", "cluster\(net)", "up"])
            }
        }
        for host in hosts {
            for peer in hosts where peer != host {
                for net in 1...2 {
                    try ip(["-n", namespace(host), "route", "add", "\(clusterAddress(peer))/32", "via", address(peer, network: net),
                            "dev", "cluster\(net)", "src", clusterAddress(host), "metric", "\(net * 10)"])
                }
            }
        }
    }

    /// Cuts `host`'s link on `network` silently: its switch-side veth leaves the bridge, carrier stays up.
    func cutSilently(host: Int, network: Int) throws {
        try ip(["-n", switchNamespace, "link", "set", "n\(host)-c\(network)", "nomaster"])
    }

    /// Cuts `host`'s link on `network` with carrier loss: its switch-side veth goes down.
    func cutCarrier(host: Int, network: Int) throws {
        try ip(["-n", switchNamespace, "link", "set", "n\(host)-c\(network)", "down"])
    }

    /// Undoes either cut.
    func restore(host: Int, network: Int) throws {
        try ip(["-n", switchNamespace, "link", "set", "n\(host)-c\(network)", "master", "c\(network)", "up"])
    }

    /// The device `host`'s kernel uses now to reach `address`.
    func routeDevice(host: Int, to address: String) throws -> String? {
        let out = try ip(["-n", namespace(host), "route", "get", address])
        let words = out.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        guard let i = words.firstIndex(of: "dev"), i + 1 < words.count else { return nil }
        return words[i + 1]
    }

    func remove() {
        for ns in hosts.map(namespace) + [switchNamespace] { _ = try? ip(["netns", "del", ns]) }
    }

    @discardableResult
    func ip(_ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.ipPath)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TopologyError(description: "ip \(args.joined(separator: " ")): \(out)") }
        return out
    }

    static let ipPath = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"].first { FileManager.default.isExecutableFile(atPath: $0) } ?? "ip"

    struct TopologyError: Error, CustomStringConvertible { var description: String }

    // MARK: - Sockets inside a namespace

    /// Makes an IPv4 socket inside namespace `ns` (on a short-lived thread that entered it;
    /// a socket keeps its namespace for life), binds it to `address:port`, then runs `setUp`.
    static func socket(in ns: String, type: Int32, address: String, port: UInt16,
                       setUp: @escaping @Sendable (CInt) throws -> Void = { _ in }) throws -> CInt {
        let result = Mutex<Result<CInt, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let r = Result<CInt, any Error> {
                let nsfd = open("/run/netns/\(ns)", O_RDONLY)
                guard nsfd >= 0 else { throw TopologyError(description: "open netns \(ns): errno \(errno)") }
                defer { close(nsfd) }
                guard let setns = Self.setns, setns(nsfd, 0x4000_0000 /* CLONE_NEWNET */) == 0 else { throw TopologyError(description: "setns \(ns): errno \(errno)") }
                let fd = Glibc.socket(AF_INET, type, 0)
                guard fd >= 0 else { throw TopologyError(description: "socket: errno \(errno)") }
                var one: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                var sa = sockaddr_in()
                sa.sin_family = sa_family_t(AF_INET)
                sa.sin_port = port.bigEndian
                inet_pton(AF_INET, address, &sa.sin_addr)
                let rc = withUnsafePointer(to: &sa) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
                guard rc == 0 else { close(fd); throw TopologyError(description: "bind \(address):\(port) in \(ns): errno \(errno)") }
                do { try setUp(fd) } catch { close(fd); throw error }
                return fd
            }
            result.withLock { $0 = r }
            done.signal()
        }
        thread.start()
        done.wait()
        return try result.withLock { $0! }.get()
    }

    /// glibc's setns(2); Swift's Glibc module leaves out the _GNU_SOURCE declarations.
    private static let setns: (@convention(c) (Int32, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "setns") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
    }()

    static func connect(_ fd: CInt, to address: String, port: UInt16) throws {
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        inet_pton(AF_INET, address, &sa.sin_addr)
        let rc = withUnsafePointer(to: &sa) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw TopologyError(description: "connect \(address):\(port): errno \(errno)") }
    }
}
