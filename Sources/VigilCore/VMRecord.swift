/// Everything the store holds about one VM, as one snapshot for the controller.
public struct VMRecord: Equatable, Sendable {
    public var spec: VMSpec
    public var placement: Placement?
    /// `mod_revision` of the placement key (0: absent); the compare of the next write.
    public var placementRevision: Int64
    public var runtime: VMRuntime?
    public init(spec: VMSpec, placement: Placement?, placementRevision: Int64, runtime: VMRuntime?) {
        self.spec = spec; self.placement = placement; self.placementRevision = placementRevision; self.runtime = runtime
    }
}
