import VigilCore
import VigilStore
import VigilWatchdog

/// What every part of the agent shares: its config, the store client, its own standing
/// (lease, leadership) and the event log. Made once in `vigild`'s main.
public struct AgentContext: Sendable {
    public let config: AgentConfig
    public let etcd: EtcdClient
    public let state: NodeState
    public let events: EventLog
    /// This host's `vigil-watchdog` (the fence that works while vigild is frozen).
    public let watchdog: WatchdogClient

    public init(config: AgentConfig, etcd: EtcdClient, state: NodeState, events: EventLog, watchdog: WatchdogClient? = nil) {
        self.config = config; self.etcd = etcd; self.state = state; self.events = events
        self.watchdog = watchdog ?? WatchdogClient(socketPath: config.watchdogSocket)
    }
}

/// A part of the agent built on an `AgentContext`; reads its pieces by name.
public protocol AgentPart: Sendable {
    var context: AgentContext { get }
}

extension AgentPart {
    public var config: AgentConfig { context.config }
    public var etcd: EtcdClient { context.etcd }
    public var state: NodeState { context.state }
    public var events: EventLog { context.events }
    public var keys: KeySpace { context.config.keys }
}
