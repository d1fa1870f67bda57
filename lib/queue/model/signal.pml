/*
 * The signalling protocol of Septa's shared-memory queues (lib/queue),
 * for Spin. Run by lib/queue/tests/spin.rs; by hand:
 *
 *     spin -a signal.pml && gcc -O2 -o pan pan.c && ./pan -m100000
 *
 * Two event-driven protection domains share one bounded single-producer/
 * single-consumer queue, and each may have to wait for the other: the
 * consumer for entries (the net queues' `consumer_signalled` flag), the
 * producer for space (the serial queue's `producer_signalled` flag). Both
 * directions run the same protocol, so one model checks both, and their
 * combination, where a lost wake-up on either side deadlocks the pair.
 *
 * Each PD runs a handler, then blocks on its notification until the other
 * signals it, then runs the handler again. The handler of the side that
 * may wait:
 *   1. processes until it cannot go on;
 *   2. asks for a signal (flag = 0), then looks at the queue again;
 *   3. if it finds work, withdraws the request (flag = 1) and goes to 1;
 *   4. notification phase: if it made progress and its peer asked, clears
 *      the peer's flag (flag = 1) and signals the peer;
 *   5. blocks (or stops, once every entry has gone through).
 *
 * Every shared access is one Promela step, and Spin interleaves the two
 * PDs at every step, as two cores would. Spin's interleavings are
 * sequentially consistent; the Rust code earns that for the handshake with
 * a SeqCst fence between each side's store and its following load (see
 * ring.rs). The broken variants model what goes wrong without the re-check
 * or without those fences (a load performed before the store that precedes
 * it in program order).
 *
 * Checked, for every interleaving:
 *   - entries arrive in order, none lost, none duplicated (assert);
 *   - no lost wake-up: a PD that has decided to block while there is work
 *     for it always has a signal pending, or its peer is between
 *     publishing that work and its notification phase, and so will read
 *     the request and signal (the monitor's assert);
 *   - no deadlock: the only end state is both PDs done (Spin's invalid
 *     end state check);
 *   - no needless signal: signals to a PD never outnumber its requests (a
 *     zeroed flag counts as the first request, as in the code);
 *   - no livelock: every cycle makes progress (pan -l, built with -DNP).
 *
 * Variants that must FAIL verification (the negative tests):
 *   BROKEN_NO_RECHECK          the consumer blocks without step 2's look
 *   BROKEN_PRODUCER_NO_RECHECK the producer blocks without it
 *   BROKEN_CHECK_FIRST         the consumer's re-check load happens before
 *                              its request store (no fence after request)
 *   BROKEN_NOTIFY_EARLY        the producer reads the consumer's flag before
 *                              its tail store lands (no fence before the
 *                              notification phase)
 *
 * Sizes: CAP (queue capacity) and ITEMS (entries sent); see spin.rs.
 */

#ifndef CAP
#define CAP 2
#endif
#ifndef ITEMS
#define ITEMS 4
#endif

/* The queue. Indices never exceed ITEMS, so they need not wrap here (the
 * wrap is index arithmetic, tested in Rust). */
byte tail = 0;            /* written by the producer only */
byte head = 0;            /* written by the consumer only */
byte slot[CAP];

/* Signal flags, written by both sides: 0 = the waiting side wants a
 * signal (a zeroed region asks for one), 1 = it does not. */
bit cflag = 0;            /* the consumer waits for entries */
bit pflag = 0;            /* the producer waits for space */

/* Notification words, as seL4's: a signal sets, a wait takes and clears. */
bit to_consumer = 0;
bit to_producer = 0;

/* Ghost state, read only by the properties. */
bit c_blocked = 0;        /* the consumer's next step is its wait */
bit p_blocked = 0;
bit c_owes = 0;           /* the consumer freed space, notification phase not done */
bit p_owes = 0;           /* the producer published, notification phase not done */
bit p_done = 0;
byte c_requests = 1;      /* the zeroed flag is a request */
byte p_requests = 1;
byte c_signals = 0;
byte p_signals = 0;

#define WORK_FOR_CONSUMER (tail != head)
#define WORK_FOR_PRODUCER (tail - head < CAP && !p_done)

/* A PD is blocked (or about to be) with work waiting, no signal pending,
 * and its peer does not owe it a notification phase: it may sleep for
 * ever. */
#define LOST_WAKEUP \
    ((c_blocked && !to_consumer && WORK_FOR_CONSUMER && !p_owes) || \
     (p_blocked && !to_producer && WORK_FOR_PRODUCER && !c_owes))

active proctype producer()
{
    byte sent = 0;
    bit progress;
    bit early = 1;        /* BROKEN_NOTIFY_EARLY: the flag read too soon */

handler:
    progress = 0;
process:
    do
    :: sent < ITEMS && tail - head < CAP ->
        slot[tail % CAP] = sent;
#ifdef BROKEN_NOTIFY_EARLY
        early = cflag;
#endif
        atomic { tail++; p_owes = 1 };
progress_p:
        sent++;
        progress = 1
    :: else -> break
    od;

    /* Out of space: ask for a signal, then look again. */
    if
    :: sent < ITEMS ->
        atomic { pflag = 0; p_requests++ };
#ifndef BROKEN_PRODUCER_NO_RECHECK
        if
        :: tail - head < CAP -> pflag = 1; goto process
        :: else -> skip
        fi
#endif
    :: else -> skip
    fi;

    /* Notification phase. */
    if
    :: progress ->
#ifdef BROKEN_NOTIFY_EARLY
        if
        :: early == 0 ->
#else
        if
        :: cflag == 0 ->
#endif
            cflag = 1;
            atomic { to_consumer = 1; c_signals++ };
            assert(c_signals <= c_requests)
        :: else -> skip
        fi
    :: else -> skip
    fi;
    p_owes = 0;

    if
    :: sent == ITEMS -> p_done = 1
    :: else ->
        p_blocked = 1;
        atomic { to_producer -> to_producer = 0; p_blocked = 0 };
        goto handler
    fi
}

active proctype consumer()
{
    byte got = 0;
    bit progress;

handler:
    progress = 0;
process:
    do
    :: tail != head ->
        assert(slot[head % CAP] == got);
        atomic { head++; c_owes = 1 };
progress_c:
        got++;
        progress = 1
    :: else -> break
    od;

    /* Queue empty: ask for a signal, then look again. */
    if
    :: got < ITEMS ->
#ifdef BROKEN_CHECK_FIRST
        if
        :: tail != head -> goto process
        :: else -> skip
        fi;
        atomic { cflag = 0; c_requests++ }
#else
        atomic { cflag = 0; c_requests++ };
#ifndef BROKEN_NO_RECHECK
        if
        :: tail != head -> cflag = 1; goto process
        :: else -> skip
        fi
#endif
#endif
    :: else -> skip
    fi;

    /* Notification phase. */
    if
    :: progress ->
        if
        :: pflag == 0 ->
            pflag = 1;
            atomic { to_producer = 1; p_signals++ };
            assert(p_signals <= p_requests)
        :: else -> skip
        fi
    :: else -> skip
    fi;
    c_owes = 0;

    if
    :: got == ITEMS -> assert(tail == ITEMS && head == ITEMS)
    :: else ->
        c_blocked = 1;
        atomic { to_consumer -> to_consumer = 0; c_blocked = 0 };
        goto handler
    fi
}

/* Fires in any state where a wake-up is lost. (-DNO_MONITOR leaves the
 * deadlock check alone to find the broken variants.) */
#ifndef NO_MONITOR
active proctype monitor()
{
end:
    atomic { LOST_WAKEUP -> assert(!LOST_WAKEUP) }
}
#endif
