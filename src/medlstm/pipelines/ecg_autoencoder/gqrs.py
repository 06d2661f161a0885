"""wfdb's gqrs QRS detector, the same detections ~10x faster.

`wfdb.processing.gqrs_detect` is a line-by-line Python port of the WFDB C program
and spends ~95 % of a record's detection time evaluating its two filters one
sample at a time (1.6 s for a 30-minute record at 120 Hz). Both filters depend on
the signal alone, so `gqrs_detect` computes them for the whole signal with numpy,
and runs the detector's adaptive logic (thresholds, peak classification, search
back, T-wave marking) only at the filter output's local maxima: every other sample
can only lower the peak threshold, which is applied in bulk.

The result equals wfdb's sample for sample, including its quirks (the learning
phase that ends at once because ``sample_valid`` starts False; the last second read
from the stale end of the 32768-sample ring buffer; the last beats marked at the
peak, not 2 dt before it); the tests compare the two on MIT-BIH and SVDB excerpts,
a whole record and noise. Signals under ~2 s go to wfdb itself.

Derived from wfdb-python 4.3.1 (`wfdb/processing/qrs.py`, MIT licence), itself a
port of gqrs.c by George B. Moody (WFDB, GPL).
"""

from __future__ import annotations

import numpy as np

_NPEAKS = 64  # peaks buffered, as wfdb (a ring: the oldest slot's amp is zeroed)
_BUFLN = 32768  # wfdb's filter ring buffers; stale values are read after the end


def _digitise(sig: np.ndarray) -> tuple[np.ndarray, float]:
    """The 24-bit digital signal and gain wfdb's ``gqrs_detect(sig=...)`` uses."""
    from wfdb.io.record import Record

    record = Record(p_signal=np.asarray(sig).reshape([-1, 1]), fmt=["24"])
    record.set_d_features(do_adc=True)
    return np.asarray(record.d_signal[:, 0], dtype=np.int64), record.adc_gain[0]


def gqrs_detect(sig: np.ndarray, fs: float) -> np.ndarray:
    """QRS locations (samples) of one physical-unit lead: wfdb's
    ``gqrs_detect(sig=sig, fs=fs)`` with its default settings, computed faster."""
    from wfdb.processing.qrs import GQRS

    x, adc_gain = _digitise(sig)
    conf = GQRS.Conf(fs=fs, adc_gain=adc_gain)
    # A signal shorter than ~2 s ends inside wfdb's (empty) learning pass, whose
    # last read decides whether the detection pass starts at all: wfdb decides.
    if len(x) < 2 * (conf.sps + conf.dt4):
        from wfdb.processing import gqrs_detect as wfdb_gqrs

        return np.asarray(wfdb_gqrs(sig=np.asarray(sig), fs=fs), dtype=np.int64)
    return _detect(x, conf)


def _filters(x: np.ndarray, c) -> tuple[np.ndarray, int, int, int]:
    """The matched filter's output as the detector reads it at each iteration.

    Returns ``(q, first, last_qf, end)``: ``q[i - first]`` is what the detector
    reads at time ``i`` for ``first <= i <= end``; ``last_qf`` is the last time the
    filter is evaluated (``sample_valid`` turns False after it).
    """
    n = len(x)
    smdt, dt, dt2, dt3, dt4 = int(c.smdt), c.dt, c.dt2, c.dt3, c.dt4
    # Trapezoidal smoothing, smv[s] for s in [0, n + smdt + 1]; wfdb clamps reads
    # outside the signal to its first / last sample.
    s_max = n + smdt + 1
    smv = np.zeros(s_max + 1, np.int64)

    def at(i: int) -> int:
        return int(x[min(max(i, 0), n - 1)])

    for s in range(1, min(smdt, s_max) + 1):
        v = at(s)
        for j in range(1, smdt):
            v += at(s + j) + at(s - j)
            smv[s] = (v << 1) + at(s + j + 1) + at(s - j - 1)
    s = np.arange(smdt + 1, s_max + 1)
    clamp = lambda i: x[np.clip(i, 0, n - 1)]  # noqa: E731
    step = clamp(s + smdt) + clamp(s + smdt - 1) - clamp(s - smdt) - clamp(s - smdt - 1)
    smv[smdt + 1 :] = smv[smdt] + np.cumsum(step)

    # The filter is evaluated for t in [-dt4, last_qf]: sample_valid turns False
    # once the smoothing reads past the signal's end (the read at s - smdt - 1).
    last_qf = n + smdt - dt4 + 1
    pad = 2 * dt4 + 2  # smv read at t - dt4 >= -2 dt4: never written there, 0
    smp = np.concatenate([np.zeros(pad, np.int64), smv])
    t = np.arange(-dt4, last_qf + 1)

    def sm(offset: int) -> np.ndarray:
        return smp[t + offset + pad]

    dv1 = sm(dt) - sm(-dt)
    dv = ((((dv1 << 1) - (sm(dt2) - sm(-dt2))) << 1) + dv1 - (sm(dt3) - sm(-dt3))) << 1
    dv += sm(dt4) - sm(-dt4)
    v1 = np.cumsum(dv)
    v0 = (v1 / c.v1norm).astype(np.int64)  # int() of the float quotient: truncates
    qf = v0 * v0

    # Reads: t - 2 .. t for t up to the loop's end; before -dt4 nothing was written
    # (0); after last_qf the ring holds the value written _BUFLN samples earlier.
    end = min(n - 1 + c.sps, last_qf + 1 + c.sps)
    first = -dt4 - 2
    times = np.arange(first, end + 1)
    q = np.zeros(len(times), np.int64)
    live = (times >= -dt4) & (times <= last_qf)
    q[live] = qf[times[live] + dt4]
    stale_at = times - _BUFLN
    stale = (times > last_qf) & (stale_at >= -dt4)
    q[stale] = qf[stale_at[stale] + dt4]
    return q, first, last_qf, end


def _detect(x: np.ndarray, c) -> np.ndarray:  # noqa: PLR0912, PLR0915 - wfdb order
    """wfdb's ``GQRS.detect`` (its running pass; the learning pass ends at once)."""
    q, first, last_qf, end = _filters(x, c)
    tf = len(x) - 1
    dt2, dt4 = c.dt2, c.dt4
    rrmin, rrmax, rrinc = c.rrmin, c.rrmax, c.rrinc
    rtmin, rtmax = c.rtmin, c.rtmax
    pthmin, qthmin = c.pthmin, c.qthmin
    pthr, qthr = c.pthr, c.qthr
    rrmean, rrdev, rtmean = c.rrmean, c.rrdev, c.rtmean

    # Iteration t looks at q[t-2], q[t-1], q[t]; a peak at t-1 needs a local maximum
    # above pthr, which never falls to 15/16 of pthmin or below.
    t_all = np.arange(first + 2, end + 1)
    q0, q1, q2 = q[2:], q[1:-1], q[:-2]
    floor = (15 * pthmin) // 16
    shape = (q2 < q1) & (q1 >= q0) & (t_all > dt4) & (q1 > floor)
    cand_t = t_all[shape].tolist()
    cand_q = q1[shape].tolist()

    ptime = [0] * _NPEAKS
    pamp = [0] * _NPEAKS
    ptype = [0] * _NPEAKS
    cur = 0
    mask = _NPEAKS - 1

    def peaktype(i: int) -> int:
        if ptype[i]:
            return ptype[i]
        a = pamp[i]
        t0 = max(ptime[i] - rrmin, 0)
        t1 = ptime[i] + rrmin
        j = (i - 1) & mask
        while t0 < ptime[j] < ptime[(j + 1) & mask]:
            if pamp[j] == 0:
                break
            if a < pamp[j] and peaktype(j) == 1:
                ptype[i] = 2
                return 2
            j = (j - 1) & mask
        j = (i + 1) & mask
        while t1 > ptime[j] > ptime[(j - 1) & mask]:
            if pamp[j] == 0:
                break
            if a < pamp[j] and peaktype(j) == 1:
                ptype[i] = 2
                return 2
            j = (j + 1) & mask
        ptype[i] = 1
        return 1

    def find_missing(r: int | None, p: int) -> int | None:
        if r is None:
            return None
        minrrerr = ptime[p] - ptime[r]
        s = None
        k = (r + 1) & mask
        while ptime[k] < ptime[p]:
            if peaktype(k) == 1:
                rrerr = abs(ptime[k] - ptime[r] - rrmean)
                if rrerr < minrrerr:
                    minrrerr = rrerr
                    s = k
            k = (k + 1) & mask
        return s

    annotations: list[int] = []
    annot_time = 0
    last_peak = 0
    last_qrs = 0
    r: int | None = None
    done = first + 2  # the next iteration whose threshold decay is not yet applied

    def decay(a: int, b: int) -> int:
        """pthr after iterations a..b found no peak: each lowers it by 1/16 once
        the last peak is more than rrmax old, down to pthmin."""
        v = pthr
        for _ in range(b - max(a, last_peak + rrmax + 1) + 1):
            if v <= pthmin or v >> 4 == 0:
                break
            v -= v >> 4
        return v

    for t, amp in zip(cand_t, cand_q, strict=True):
        # Iterations done..t without a peak (t itself when amp <= pthr after them).
        if t - last_peak > rrmax and pthr > pthmin:
            pthr = decay(done, t - 1)
        done = t + 1
        if amp <= pthr:
            if t - last_peak > rrmax and pthr > pthmin:
                pthr -= pthr >> 4
            continue
        # add_peak
        cur = (cur + 1) & mask
        ptime[cur], pamp[cur], ptype[cur] = t - 1, amp, 0
        pamp[(cur + 1) & mask] = 0
        last_peak = t - 1
        running = t <= last_qf
        # The scan from the oldest peak acts only on those at least rrmin after the
        # last beat (the ring is in time order, and that bound only grows): start
        # at the first of them.
        oldest = (cur + 1) & mask
        bound = annot_time + rrmin
        p = cur
        while p != oldest and ptime[(p - 1) & mask] >= bound:
            p = (p - 1) & mask
        while ptime[p] < t - rtmax:
            if ptime[p] >= annot_time + rrmin and peaktype(p) == 1:
                if pamp[p] > qthr:
                    rr = ptime[p] - annot_time
                    m = find_missing(r, p)
                    if (
                        rr > rrmean + 2 * rrdev
                        and rr > 2 * (rrmean - rrdev)
                        and m is not None
                    ):
                        p = m
                        rr = ptime[p] - annot_time
                    rrd = abs(rr - rrmean)
                    rrdev += (rrd - rrdev) >> 3
                    rrd = min(rrd, rrinc)
                    rrmean += rrd if rr > rrmean else -rrd
                    if pamp[p] > qthr * 4:
                        qthr += 1
                    elif pamp[p] < qthr:
                        qthr -= 1
                    qthr = min(qthr, pthr * 20)
                    last_qrs = ptime[p]
                    if running:
                        annotations.append(ptime[p] - dt2)
                        annot_time = ptime[p]
                    # This beat's T wave: the peak nearest rtmean after it.
                    tw = None
                    rtdmin = rtmean
                    k = (p + 1) & mask
                    while ptime[k] > annot_time:
                        rt = ptime[k] - annot_time - dt2
                        if rt < rtmin:
                            k = (k + 1) & mask
                            continue
                        if rt > rtmax:
                            break
                        rtd = abs(rt - rtmean)
                        if rtd < rtdmin:
                            rtdmin = rtd
                            tw = k
                        k = (k + 1) & mask
                    if tw is not None:
                        rt = ptime[tw] - dt2 - annot_time
                        rtmean += (rt - rtmean) >> 4
                        if rtmean > rtmax:
                            rtmean = rtmax
                        elif rtmean < rtmin:
                            rtmean = rrmin  # sic (wfdb)
                        ptype[tw] = 2
                    r = p
                elif t - last_qrs > rrmax and qthr > qthmin:
                    qthr -= qthr >> 4
            p = (p + 1) & mask
    # (The iterations after the last candidate only lower pthr, read no more.)

    # Mark the last beat or two (at the peak itself, as wfdb).
    p = (cur + 1) & mask
    while ptime[p] < ptime[(p + 1) & mask]:
        if ptime[p] >= annot_time + rrmin and ptime[p] < tf and peaktype(p) == 1:
            annotations.append(ptime[p])
            annot_time = ptime[p]
        p = (p + 1) & mask
    return np.asarray(annotations, dtype=np.int64)
