import Foundation
import Testing
import VigilTestKit
@testable import VigilLab

/// The lab tests run one at a time: the lab's API blocks its thread (commands, polling), and
/// several such tests at once would hold every thread of the concurrency pool, stalling the
/// timing-sensitive async tests of other suites that run beside them.
@Suite(.serialized) enum LabIntegrationTests {}

extension LabIntegrationTests {
    /// Real labs in network namespaces (root). Each test uses its own lab name and index
    /// (7–15; other suites here use 1–6), and always tears its lab down.
    @Suite struct LabNetnsTests {
        static func uniqueName() -> String { "t" + LabConfigFiles.randomHex(bytes: 3) }

        /// Brings a lab up, runs `body`, and always brings it down.
        static func withLab(nodes: Int, index: Int, _ body: (Lab) throws -> Void) throws {
            let lab = try Lab.up(LabSpec(name: uniqueName(), index: index, nodes: nodes))
            defer { _ = try? lab.down() }
            try body(lab)
        }

        /// Polls `condition` until true or `timeout`: after a link comes back, a connection attempt
        /// can still fail once while the kernel finishes a neighbour resolution begun during the cut.
        static func eventually(_ timeout: Duration = .seconds(10), _ condition: () throws -> Bool) rethrows -> Bool {
            let deadline = ContinuousClock.now + timeout
            while true {
                if try condition() { return true }
                if ContinuousClock.now >= deadline { return false }
                Thread.sleep(forTimeInterval: 0.1)
            }
        }

        @Test func netnsCapabilityIsPresentOnCI() throws {
            try Capabilities.require(Capabilities.hasNetns, "netns")
            try Capabilities.require(Capabilities.hasEtcd, "etcd")
        }

        @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd))
        func threeHostsReachEachOtherAndEtcdHasQuorumRequiresNetns() throws {
            try Self.withLab(nodes: 3, index: 10) { lab in
                for a in lab.hosts {
                    for b in lab.hosts where a != b {
                        #expect(try lab.canReach(from: a, address: lab.clusterAddress(b), port: 2379), "\(a) → \(b)")
                    }
                    #expect(try lab.routeDevice(from: a, to: lab.clusterAddress(a == 1 ? 2 : 1)) == "cluster1")
                    let sysctls = try lab.exec(host: a, ["cat", "/proc/sys/net/ipv4/conf/all/ignore_routes_with_linkdown", "/proc/sys/net/ipv4/ip_forward"])
                    #expect(sysctls.stdout.split(separator: "\n") == ["1", "0"])
                }
                // Quorum seen from the root namespace, through the cluster addresses.
                try lab.waitForEtcdQuorum(timeout: .seconds(5))
                // The root namespace reaches cluster addresses and the client network, nothing else of
                // the lab (an `unreachable` route keeps lab traffic off the default route), and forwards nothing.
                for h in lab.hosts {
                    #expect(lab.rootCanReach(address: lab.clusterAddress(h), port: 2379))
                    #expect(lab.rootCanReach(address: lab.plan.address(h, on: .client), port: 9))
                    #expect(!lab.rootCanReach(address: lab.plan.address(h, on: .cluster2), port: 9, timeout: .milliseconds(300)))
                }
                #expect(try CommandRunner.run(["ip", "route", "get", "10.77.87.1"]).stderr.contains("No route to host"))
                #expect(try CommandRunner.check(["cat", "/proc/sys/net/ipv4/ip_forward"]) == "0\n")
                #expect(lab.etcdEndpoints == (1...3).map { "http://10.77.86.\($0):2379" })
                // Shared state and config files.
                let loaded = try Lab.load(name: lab.name)
                #expect(loaded.record == lab.record)
                #expect(FileManager.default.fileExists(atPath: lab.clientConfigPath))
                #expect(FileManager.default.fileExists(atPath: lab.configPath(host: 3)))
                // A second `up` of the same lab is refused, and so is another lab on the same index.
                #expect { try Lab.up(LabSpec(name: lab.name, index: 10, nodes: 3)) } throws: { ($0 as? LabError)?.code == .alreadyExists }
                #expect { try Lab.up(LabSpec(name: Self.uniqueName(), index: 10, nodes: 1)) } throws: { ($0 as? LabError)?.code == .alreadyExists }

                // Process faults: freeze and thaw a member, kill a whole host, restart its member.
                try lab.signal(host: 3, process: .etcd, SIGSTOP)
                #expect(try lab.status().hosts[2].etcdState == "stopped")
                try lab.signal(host: 3, process: .etcd, SIGCONT)
                #expect(try lab.status().hosts[2].etcdState == "running")
                try lab.killHost(host: 3)
                #expect(lab.pid(host: 3, process: .etcd) == nil)
                #expect(LabDaemons.namespacePids(lab.plan.namespace(3)).isEmpty)
                try lab.startEtcd(host: 3)
                try lab.waitForEtcdQuorum(timeout: .seconds(10))
            }
        }

        @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd))
        func carrierCutFailsOverToCluster2RequiresNetns() throws {
            try Self.withLab(nodes: 3, index: 11) { lab in
                try lab.cut(host: 1, net: .cluster1)
                #expect(try !lab.hasCarrier(host: 1, net: .cluster1))
                #expect(try lab.hasCarrier(host: 1, net: .cluster2))
                // The cut host's kernel skips the linkdown route by itself.
                #expect(try lab.routeDevice(from: 1, to: lab.clusterAddress(2)) == "cluster2")
                // Its peers still see their cluster1 up; the heartbeat service will steer them. Do its
                // job by hand: drop their cluster1 route to n1, and traffic flows both ways over cluster2.
                for peer: LabHost in [2, 3] {
                    _ = try lab.exec(host: peer, ["ip", "route", "del", "\(lab.clusterAddress(1))/32", "metric", "10"])
                    #expect(try lab.routeDevice(from: peer, to: lab.clusterAddress(1)) == "cluster2")
                    #expect(try lab.canReach(from: 1, address: lab.clusterAddress(peer), port: 2379), "n1 → \(peer)")
                    #expect(try lab.canReach(from: peer, address: lab.clusterAddress(1), port: 2379), "\(peer) → n1")
                }
                try lab.restore(host: 1, net: .cluster1)
                try lab.resetRoutes()
                #expect(try lab.hasCarrier(host: 1, net: .cluster1))
                #expect(try lab.routeDevice(from: 1, to: lab.clusterAddress(2)) == "cluster1")
                #expect(try lab.routeDevice(from: 2, to: lab.clusterAddress(1)) == "cluster1")
                #expect(try Self.eventually { try lab.canReach(from: 2, address: lab.clusterAddress(1), port: 2379) })
                #expect(try lab.current().faults.isEmpty)
            }
        }

        @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd))
        func silentCutKeepsCarrierAndDropsTrafficRequiresNetns() throws {
            try Self.withLab(nodes: 3, index: 12) { lab in
                try lab.cut(host: 1, net: .cluster1, silent: true)
                #expect(try lab.hasCarrier(host: 1, net: .cluster1))
                #expect(try lab.routeDevice(from: 1, to: lab.clusterAddress(2)) == "cluster1")
                #expect(try !lab.canReach(from: 1, address: lab.clusterAddress(2), port: 2379, timeout: .milliseconds(500)))
                #expect(try !lab.canReach(from: 2, address: lab.plan.address(1, on: .cluster1), port: 2379, timeout: .milliseconds(500)))
                // cluster2 still works: the n2–n3 path and n1's storage networks are untouched.
                #expect(try lab.canReach(from: 2, address: lab.clusterAddress(3), port: 2379))
                #expect(try lab.current().faults == [LinkFault(host: 1, net: .cluster1, cut: .silent)])
                try lab.restore(host: 1, net: .cluster1)
                #expect(try Self.eventually { try lab.canReach(from: 1, address: lab.clusterAddress(2), port: 2379) })
            }
        }

        @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd))
        func partitionIsolatesTheMinorityRequiresNetns() throws {
            try Self.withLab(nodes: 3, index: 13) { lab in
                try lab.partition([[1, 2], [3]])
                #expect(try lab.canReach(from: 1, address: lab.clusterAddress(2), port: 2379))
                for majority: LabHost in [1, 2] {
                    #expect(try !lab.canReach(from: 3, address: lab.clusterAddress(majority), port: 2379, timeout: .milliseconds(500)))
                    #expect(try !lab.canReach(from: majority, address: lab.plan.address(3, on: .cluster2), port: 2379, timeout: .milliseconds(500)))
                }
                // Carrier stays up on the minority: only heartbeats can tell.
                #expect(try lab.hasCarrier(host: 3, net: .cluster1))
                // The majority keeps quorum; the root namespace stays with side 0 and cannot see n3.
                try lab.waitUntilEtcdHealthy([1, 2], timeout: .seconds(10))
                #expect(!lab.isEtcdHealthy(3))
                try lab.heal()
                #expect(try Self.eventually { try lab.canReach(from: 3, address: lab.clusterAddress(1), port: 2379) })
                try lab.waitForEtcdQuorum(timeout: .seconds(10))
                #expect(try lab.current().partition.isEmpty)
            }
        }

        @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd))
        func downRemovesEverythingAlsoAfterACrashRequiresNetns() throws {
            let name = Self.uniqueName()
            let lab = try Lab.up(LabSpec(name: name, index: 14, nodes: 2))
            defer { _ = try? lab.down() }
            // Two hosts: a witness member in its own namespace makes three.
            let namespaces = try LabTopology.namespaces().filter(lab.plan.ownsNamespace).sorted()
            #expect(namespaces == ["\(name)-n1", "\(name)-n2", "\(name)-sw", "\(name)-w"])
            try lab.waitUntilEtcdHealthy([1, 2, .witness], timeout: .seconds(5))
            let pids = lab.spec.etcdMembers.compactMap { lab.pid(host: $0, process: .etcd) }
            #expect(pids.count == 3)
            // Simulate a crash halfway: a frozen member, a stray process in a namespace, lab.json gone.
            try lab.signal(host: 2, process: .etcd, SIGSTOP)
            try CommandRunner.spawn(["setsid", "-f", "ip", "netns", "exec", "\(name)-n1", "sleep", "300"])
            try FileManager.default.removeItem(atPath: lab.directory + "/lab.json")

            let report = try Lab.down(name: name)
            #expect(Set(report.deletedNamespaces) == Set(namespaces))
            #expect(try LabTopology.namespaces().filter(lab.plan.ownsNamespace).isEmpty)
            #expect(try LabTopology.links(in: nil).isDisjoint(with: ["vl14-c1", "vl14-cl"]))
            #expect(report.deletedRoutes == ["unreachable 10.77.112.0/21"])
            #expect(try !CommandRunner.check(["ip", "route", "show", "table", "all"]).contains("10.77.112."))
            #expect(pids.allSatisfy { !LabDaemons.isAlive($0) })
            #expect(!FileManager.default.fileExists(atPath: lab.directory))
            // Idempotent.
            #expect(try Lab.down(name: name).wasAbsent)
        }

        @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd))
        func concurrentUpsOnOneIndexLetExactlyOneWinRequiresNetns() throws {
            let names = [Self.uniqueName(), Self.uniqueName()]
            let outcomes = LockedResults()
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                do {
                    _ = try Lab.up(LabSpec(name: names[i], index: 7, nodes: 1))
                    outcomes.append("up")
                } catch let error as LabError where error.code == .alreadyExists {
                    outcomes.append("refused")
                } catch {
                    outcomes.append("\(error)")
                }
            }
            for name in names { _ = try? Lab.down(name: name) }
            #expect(outcomes.values.sorted() == ["refused", "up"])
        }

        @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd))
        func twoLabsCoexistRequiresNetns() throws {
            try Self.withLab(nodes: 1, index: 15) { a in
                try Self.withLab(nodes: 1, index: 9) { b in
                    #expect(a.clusterAddress(1) == "10.77.126.1")
                    #expect(b.clusterAddress(1) == "10.77.78.1")
                    try a.waitForEtcdQuorum(timeout: .seconds(5))
                    try b.waitForEtcdQuorum(timeout: .seconds(5))
                    // Labs are isolated from each other.
                    #expect(try !a.canReach(from: 1, address: b.clusterAddress(1), port: 2379, timeout: .milliseconds(300)))
                    try b.down()
                    try a.waitForEtcdQuorum(timeout: .seconds(5))
                }
            }
        }
    }

    /// Strings appended from several threads.
    final class LockedResults: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        func append(_ s: String) { lock.withLock { items.append(s) } }
        var values: [String] { lock.withLock { items } }
    }

    /// The agent path of `up`, with a stand-in for vigild: a script that serves `/healthz` on the
    /// cluster address from its config (vigild itself is tested by its own targets).
    @Suite struct LabAgentTests {
        /// busybox (a project dependency, scripts/install-deps.sh) has a tiny httpd; python3 as a fallback.
        static let server: String? = {
            if let busybox = Capabilities.which("busybox") { return "\(busybox) httpd -f -p \"$addr:7480\" -h \"$www\"" }
            if let python = Capabilities.which("python3") { return "\(python) -m http.server 7480 --bind \"$addr\" --directory \"$www\"" }
            return nil
        }()

        @Test func agentStandInIsAvailableOnCI() throws {
            try Capabilities.require(Self.server != nil, "busybox or python3 (stand-in agent)")
        }

        @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd && server != nil && BuiltBinaries.haveWatchdog))
        func agentsStartAtHighPriorityAndAnswerHealthzRequiresNetns() throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fake-vigild-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let script = dir + "/vigild"
            try """
                #!/bin/bash
                # usage: vigild --config FILE
                addr=$(sed -n 's/^clusterAddress: //p' "$2")
                www=$(mktemp -d); touch "$www/healthz"
                exec \(Self.server!)
                """.write(toFile: script, atomically: true, encoding: .utf8)
            chmod(script, 0o755)
            try FileManager.default.createSymbolicLink(atPath: dir + "/vigil-watchdog", withDestinationPath: BuiltBinaries.vigilWatchdog)

            let lab = try Lab.up(LabSpec(name: LabIntegrationTests.LabNetnsTests.uniqueName(), index: 8, nodes: 3, vigildPath: script))
            defer { _ = try? lab.down() }
            let pid = try #require(lab.pid(host: 2, process: .vigild))
            // etcd and agents run at nice -10 (field 19 of /proc/PID/stat), ahead of QEMU guests.
            let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
            let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
            #expect(fields[16] == "-10")
            #expect(try lab.status().hosts.map(\.vigildState) == ["running", "running", "running"])
            #expect(FileManager.default.fileExists(atPath: lab.logFile(host: 2, process: .vigild)))
            try lab.signal(host: 2, process: .vigild, SIGKILL)
            #expect(lab.pid(host: 2, process: .vigild) == nil)
            try lab.startVigild(host: 2)
            try lab.waitForAgents(timeout: .seconds(10))
        }

        @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd && BuiltBinaries.haveWatchdog))
        func anAgentThatDoesNotStartFailsUpWithItsLogAndLeavesNothingRequiresNetns() throws {
            let name = LabIntegrationTests.LabNetnsTests.uniqueName()
            let bin = try WatchdogLabTests.binDirectory(vigild: "/bin/false")
            defer { try? FileManager.default.removeItem(atPath: bin) }
            #expect {
                try Lab.up(LabSpec(name: name, index: 7, nodes: 1, vigildPath: bin + "/vigild", readinessTimeout: .seconds(5)))
            } throws: { error in
                guard let error = error as? LabError else { return false }
                return error.code == .notReady && error.message.contains("vigild on n1 exited") && error.message.contains("vigild.log")
            }
            #expect(try LabTopology.namespaces().filter(LabAddressPlan(lab: name, index: 7, mode: .namespaces).ownsNamespace).isEmpty)
            #expect(!FileManager.default.fileExists(atPath: LabSpec.defaultBaseDirectory + "/" + name))
        }
    }

    /// Loopback mode: no namespaces, so no root needed; needs etcd.
    @Suite struct LabLoopbackTests {
        @Test func etcdCapabilityIsPresentOnCI() throws {
            try Capabilities.require(Capabilities.hasEtcd, "etcd")
        }

        @Test(.enabled(if: Capabilities.hasEtcd))
        func loopbackLabRunsEtcdAndRefusesLinkFaultsRequiresEtcd() throws {
            let base = FileManager.default.temporaryDirectory.appendingPathComponent("vigil-lab-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
            defer { try? FileManager.default.removeItem(atPath: base) }
            let lab = try Lab.up(LabSpec(name: "loop", index: 12, nodes: 3, mode: .loopback, baseDirectory: base))
            defer { _ = try? lab.down() }
            #expect(lab.etcdEndpoints == ["http://127.0.0.121:2379", "http://127.0.0.122:2379", "http://127.0.0.123:2379"])
            try lab.waitForEtcdQuorum(timeout: .seconds(5))
            #expect { try lab.cut(host: 1, net: .cluster1) } throws: { ($0 as? LabError)?.code == .unsupportedInLoopback }
            #expect { try lab.partition([[1], [2, 3]]) } throws: { ($0 as? LabError)?.code == .unsupportedInLoopback }
            try lab.signal(host: 1, process: .etcd, SIGKILL)
            #expect(lab.pid(host: 1, process: .etcd) == nil)
            try lab.waitUntilEtcdHealthy([2, 3], timeout: .seconds(10))
            try lab.startEtcd(host: 1)
            try lab.waitForEtcdQuorum(timeout: .seconds(10))
            let pids = lab.spec.etcdMembers.compactMap { lab.pid(host: $0, process: .etcd) }
            try Lab.down(name: "loop", baseDirectory: base)
            #expect(pids.count == 3 && pids.allSatisfy { !LabDaemons.isAlive($0) })
        }
    }
}
