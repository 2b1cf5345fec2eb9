import Testing
@testable import VigilCore

struct WatchdogStateMachineTests {
    let holder = "n1"
    let qemuA = FenceTarget(vm: VMName(unchecked: "a"), pid: 101, startTime: 7)
    let qemuB = FenceTarget(vm: VMName(unchecked: "b"), pid: 102, startTime: 8)

    /// Instants in milliseconds since an arbitrary boot, for readability.
    func ms(_ value: UInt64) -> MonotonicInstant { MonotonicInstant(nanoseconds: value * 1_000_000) }

    func armed(until deadline: UInt64 = 1000) -> WatchdogStateMachine {
        var m = WatchdogStateMachine()
        _ = m.handle(.pet(deadline: ms(deadline), holder: holder, now: ms(0)))
        return m
    }

    func fencing(since deadline: UInt64 = 1000) -> WatchdogStateMachine {
        var m = armed(until: deadline)
        _ = m.handle(.tick(now: ms(deadline)))
        return m
    }

    func expired(_ deadline: UInt64, late: Duration) -> WatchdogStateMachine.Effect {
        .log(.expired(deadline: ms(deadline), holder: holder, noticedLate: late))
    }

    func refusal(since deadline: UInt64) -> WatchdogStateMachine.Effect { .refuse(.fencing(since: ms(deadline))) }

    // MARK: Arming and petting

    @Test func firstPetArmsAndSaysHowMuchTimeIsLeft() {
        var m = WatchdogStateMachine()
        #expect(m.handle(.tick(now: ms(5))).isEmpty, "a disarmed watchdog never fences")
        #expect(m.handle(.pet(deadline: ms(300), holder: holder, now: ms(100)))
                == [.log(.armed(holder: holder, deadline: ms(300), remaining: .milliseconds(200)))])
        #expect(m.state == .armed(deadline: ms(300), holder: holder))
        #expect(m.nextTick(now: ms(100), pollInterval: .milliseconds(50)) == ms(300), "armed: wake at the deadline")
    }

    @Test func petsMoveTheDeadlineQuietly() {
        var m = armed(until: 1000)
        #expect(m.handle(.pet(deadline: ms(1500), holder: holder, now: ms(900))).isEmpty)
        #expect(m.handle(.tick(now: ms(1499))).isEmpty, "the old deadline no longer counts")
        #expect(m.deadline == ms(1500))
    }

    @Test func tickOneNanosecondBeforeTheDeadlineDoesNothingAndExactlyAtItFences() {
        var m = armed(until: 1000)
        #expect(m.handle(.tick(now: ms(1000) - .nanoseconds(1))).isEmpty)
        #expect(m.handle(.tick(now: ms(1000))) == [expired(1000, late: .zero), .scan])
        #expect(m.state == .fencing(deadline: ms(1000), holder: holder))
    }

    @Test func aLateTickSaysHowLateItNoticed() {
        var m = armed(until: 1000)
        #expect(m.handle(.tick(now: ms(1030))) == [expired(1000, late: .milliseconds(30)), .scan])
    }

    // MARK: Deadlines that move backwards or have passed

    @Test func anEarlierDeadlineIsAcceptedAsIsBecauseVigildKnowsBest() {
        var m = armed(until: 1000)
        #expect(m.handle(.pet(deadline: ms(600), holder: holder, now: ms(100)))
                == [.log(.deadlineMovedEarlier(from: ms(1000), to: ms(600), holder: holder))])
        #expect(m.handle(.tick(now: ms(600))) == [expired(600, late: .zero), .scan], "the earlier deadline fences")
    }

    @Test func aPetWhoseDeadlineHasAlreadyPassedFencesAtOnceAndIsRefused() {
        var m = armed(until: 1000)
        let effects = m.handle(.pet(deadline: ms(400), holder: holder, now: ms(500)))
        #expect(effects == [
            .log(.deadlineMovedEarlier(from: ms(1000), to: ms(400), holder: holder)),
            expired(400, late: .milliseconds(100)), .scan, refusal(since: 400),
        ])
        var fresh = WatchdogStateMachine()
        #expect(fresh.handle(.pet(deadline: ms(400), holder: holder, now: ms(400))) == [
            .log(.armed(holder: holder, deadline: ms(400), remaining: .zero)),
            expired(400, late: .zero), .scan, refusal(since: 400),
        ], "a deadline equal to now is already due")
    }

    @Test func aPetNeverExtendsADeadlineThatPassedBeforeTheWatchdogNoticed() {
        // The watchdog was not scheduled at 1000; the pet arrives at 1200 with a future deadline.
        var m = armed(until: 1000)
        #expect(m.handle(.pet(deadline: ms(3000), holder: holder, now: ms(1200)))
                == [expired(1000, late: .milliseconds(200)), .scan, refusal(since: 1000)])
        #expect(m.state == .fencing(deadline: ms(1000), holder: holder))
    }

    // MARK: Fencing

    @Test func fencingKillsWhatTheScanFoundAndKeepsScanningEveryPoll() {
        var m = fencing(since: 1000)
        #expect(m.handle(.scanned([qemuA, qemuB], now: ms(1000))) == [.kill([qemuA, qemuB], deadline: ms(1000), holder: holder)])
        #expect(m.handle(.scanned([], now: ms(1000))).isEmpty, "nothing found, nothing to kill")
        #expect(m.nextTick(now: ms(1001), pollInterval: .milliseconds(50)) == ms(1051))
        #expect(m.handle(.tick(now: ms(1051))) == [.scan], "still fencing: scan again")
        #expect(m.handle(.scanned([qemuB], now: ms(1051))) == [.kill([qemuB], deadline: ms(1000), holder: holder)],
                "a QEMU that appears late dies too")
    }

    @Test func aPetAfterTheDeadlineDoesNotUnfence() {
        var m = fencing(since: 1000)
        #expect(m.handle(.pet(deadline: ms(5000), holder: holder, now: ms(1100))) == [refusal(since: 1000)])
        #expect(m.isFencing)
        #expect(m.handle(.tick(now: ms(1150))) == [.scan])
        #expect(m.handle(.scanned([qemuA], now: ms(1150))) == [.kill([qemuA], deadline: ms(1000), holder: holder)],
                "QEMUs condemned before the pet still die")
    }

    @Test func disarmIsRefusedWhileFencing() {
        var m = fencing(since: 1000)
        #expect(m.handle(.disarm(now: ms(1100))) == [refusal(since: 1000)])
        #expect(m.isFencing)
    }

    @Test func rearmEndsFencingAndWatchesTheNewDeadline() {
        var m = fencing(since: 1000)
        #expect(m.handle(.rearm(deadline: ms(4000), holder: holder, now: ms(2000))) == [
            .log(.rearmedAfterFence(expiredAt: ms(1000), holder: holder, deadline: ms(4000))),
            .log(.armed(holder: holder, deadline: ms(4000), remaining: .seconds(2))),
        ])
        #expect(m.state == .armed(deadline: ms(4000), holder: holder))
        #expect(m.handle(.scanned([qemuA], now: ms(2001))).isEmpty, "a scan from before the re-arm kills nothing")
        #expect(m.handle(.tick(now: ms(3999))).isEmpty)
        #expect(m.handle(.tick(now: ms(4000))) == [expired(4000, late: .zero), .scan])
    }

    @Test func rearmAfterAnUnnoticedExpiryFencesFirstAndIsRefusedOnce() {
        var m = armed(until: 1000)
        #expect(m.handle(.rearm(deadline: ms(5000), holder: holder, now: ms(1200)))
                == [expired(1000, late: .milliseconds(200)), .scan, refusal(since: 1000)],
                "the QEMUs of the passed deadline must die before vigild may re-arm")
        #expect(m.handle(.scanned([qemuA], now: ms(1200))) == [.kill([qemuA], deadline: ms(1000), holder: holder)])
        #expect(m.handle(.rearm(deadline: ms(5000), holder: holder, now: ms(1300))).contains(
            .log(.rearmedAfterFence(expiredAt: ms(1000), holder: holder, deadline: ms(5000)))))
        #expect(!m.isFencing)
    }

    @Test func rearmWhenNotFencingIsAPet() {
        var m = WatchdogStateMachine()
        #expect(m.handle(.rearm(deadline: ms(500), holder: holder, now: ms(0)))
                == [.log(.armed(holder: holder, deadline: ms(500), remaining: .milliseconds(500)))])
        #expect(m.handle(.rearm(deadline: ms(700), holder: holder, now: ms(100))).isEmpty)
        #expect(m.deadline == ms(700))
    }

    @Test func rearmWithAPassedDeadlineFencesAgainAtOnce() {
        var m = fencing(since: 1000)
        let effects = m.handle(.rearm(deadline: ms(1500), holder: holder, now: ms(2000)))
        #expect(effects.suffix(3) == [expired(1500, late: .milliseconds(500)), .scan, refusal(since: 1500)])
        #expect(m.state == .fencing(deadline: ms(1500), holder: holder))
    }

    // MARK: Disarm and holders

    @Test func disarmStopsWatching() {
        var m = armed(until: 1000)
        #expect(m.handle(.disarm(now: ms(500))) == [.log(.disarmed(holder: holder))])
        #expect(m.state == .disarmed)
        #expect(m.handle(.tick(now: ms(5000))).isEmpty, "no deadline any more")
        #expect(m.nextTick(now: ms(5000), pollInterval: .milliseconds(50)) == nil)
        #expect(m.handle(.disarm(now: ms(5001))).isEmpty, "disarming twice is harmless")
        #expect(m.handle(.scanned([qemuA], now: ms(5002))).isEmpty, "disarmed: never kills")
    }

    @Test func disarmAfterAnUnnoticedExpiryFencesInstead() {
        var m = armed(until: 1000)
        #expect(m.handle(.disarm(now: ms(1001))) == [expired(1000, late: .milliseconds(1)), .scan, refusal(since: 1000)])
    }

    @Test func aNewHolderIsLoggedButAccepted() {
        var m = armed(until: 1000)
        #expect(m.handle(.pet(deadline: ms(1200), holder: "n1-restarted", now: ms(100)))
                == [.log(.holderChanged(from: holder, to: "n1-restarted"))])
        #expect(m.holder == "n1-restarted")
    }

    // MARK: Instants

    @Test func instantArithmeticClampsAndSubtractsSigned() {
        #expect(ms(1000) - ms(1500) == .milliseconds(-500))
        #expect(ms(1500) - ms(1000) == .milliseconds(500))
        #expect(ms(1) - .seconds(5) == MonotonicInstant(nanoseconds: 0), "no wrap below boot")
        #expect(MonotonicInstant(nanoseconds: .max - 1) + .seconds(1) == MonotonicInstant(nanoseconds: .max))
        #expect(ms(1) + .microseconds(1) == MonotonicInstant(nanoseconds: 1_001_000))
        #expect(Duration.seconds(-2).wholeNanoseconds == -2_000_000_000)
    }
}
