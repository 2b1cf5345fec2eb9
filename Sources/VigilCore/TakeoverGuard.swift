/// What a takeover write must still find true when it lands.
///
/// The leader decides a failover on its snapshot of `alive/`, but its write lands later.
/// Meanwhile the lost node may have come back with a new lease, read the placement still
/// on itself and restarted the VM: a compare on the placement's mod revision alone lets
/// the takeover through, and the VM runs twice (found by the simulator, seed 3). So a
/// write that moves a VM away from a node the leader believes down also requires that
/// node's `alive` key to be still absent — the fact the decision rested on.
public enum TakeoverGuard {
    /// The node whose `alive` key must still be absent for `new` to replace `old`, or nil
    /// when the write takes nothing from a node believed down.
    public static func mustStillBeDown(from old: Placement?, to new: Placement, alive: Set<NodeName>) -> NodeName? {
        guard new.phase == .placed, let from = old?.node, new.node != from, !alive.contains(from) else { return nil }
        return from
    }
}
