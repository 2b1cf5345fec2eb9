import Testing
import VigilCore
import VigilSim

/// Runs the simulator found failing, kept short (the faults stop soon after the step
/// that failed, so the run up to it is the same as in the full test).
struct SimulationRegressionTests {
    func run(seed: UInt64, faultSteps: Int) -> Simulation.Outcome {
        var c = SimConfig(seed: seed)
        c.faultSteps = faultSteps
        var sim = Simulation(config: c)
        return sim.run()
    }

    /// Seed 3, step 451: n7's host crashed; its lease expired as it came back and joined
    /// with a new one. The new leader had read `alive/` without n7 and failed vm31 over
    /// to n14 (its CAS compared only the placement's revision); n7, with its new lease,
    /// had read the placement still on itself and started vm31 too.
    @Test func aNodeThatRejoinsDuringAFailoverDoesNotRunItsVMsTwice() {
        let o = run(seed: 3, faultSteps: 300)
        #expect(o.violations.isEmpty, "\(o.violations.prefix(3))")
    }
}
