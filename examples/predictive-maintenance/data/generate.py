#!/usr/bin/env python3
"""Generates the predictive-maintenance example data: sensor_readings.csv and rul_feedback.csv.

Python 3 standard library only, deterministic (fixed seed): running it twice writes the same
bytes. Run it from anywhere; the files land next to this script.

sensor_readings.csv  ~10,000 readings: 42 machines (pumps, compressors, turbines) reporting every
                     three hours for 30 days. Each machine runs through service cycles of a few
                     hundred hours; as a cycle wears on, the machine runs hotter, vibrates more
                     (and more erratically), loses pressure and a little speed. `rul_hours` is the
                     remaining useful life: hours until the machine fails and is serviced, after
                     which a fresh cycle starts. The feature view's rolling means, maxima and
                     standard deviations of vibration and temperature carry the signal.
rul_feedback.csv     ~300 delayed labels: for predictions served in the last ten days, the actual
                     remaining life, known once the machine failed.
"""

import csv
import os
import random
from datetime import datetime, timedelta, timezone

SEED = 4242
START = datetime(2026, 2, 1, tzinfo=timezone.utc)
DAYS = 30
MACHINES = 42
INTERVAL_HOURS = 3
FEEDBACK = 300

OUT_DIR = os.path.dirname(os.path.abspath(__file__))

# Per machine type: nominal temperature (°C), vibration (mm/s), pressure (bar), rpm, life (hours).
TYPES = {
    "pump": (62.0, 2.2, 6.0, 1750.0, (320, 700)),
    "compressor": (78.0, 3.1, 9.5, 3000.0, (260, 560)),
    "turbine": (91.0, 1.6, 14.0, 3600.0, (420, 900)),
}


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    rng = random.Random(SEED)
    rows = []
    for m in range(MACHINES):
        machine_id = f"m-{m + 1:03d}"
        kind = list(TYPES)[m % len(TYPES)]
        temp0, vib0, press0, rpm0, (life_lo, life_hi) = TYPES[kind]
        # Each unit differs a little from the nominal values of its type.
        temp0 += rng.gauss(0, 2.0)
        vib0 *= rng.uniform(0.85, 1.15)
        press0 += rng.gauss(0, 0.3)
        life = rng.uniform(life_lo, life_hi)
        age = rng.uniform(0, life * 0.9)  # machines join the window part-way through a cycle
        service_at = START - timedelta(hours=age)  # roughly: age accrues about one per clock hour
        t = START + timedelta(minutes=rng.randrange(0, 180))
        end = START + timedelta(days=DAYS)
        # Simulate until the first failure after the window, so every reading's remaining life
        # (clock hours until the failure that ends its cycle) is known.
        cycle = []
        while True:
            wear = age / life  # 0 fresh … 1 failing
            w2 = wear * wear
            load = min(1.0, max(0.2, rng.gauss(0.7, 0.12)))
            if t < end:
                cycle.append(
                    [
                        t,
                        machine_id,
                        kind,
                        round(temp0 + 14.0 * w2 + 3.0 * (load - 0.7) + rng.gauss(0, 1.6), 2),
                        round(vib0 * (1 + 2.2 * w2 * wear) + abs(rng.gauss(0, 0.25 + 0.9 * w2)), 3),
                        round(press0 - 1.8 * w2 + rng.gauss(0, 0.25), 3),
                        round(rpm0 * (1 - 0.04 * w2) + rng.gauss(0, 12), 1),
                        round(load, 3),
                        None,  # hours since service, filled in below
                        None,  # remaining useful life, filled in below
                    ]
                )
            step = INTERVAL_HOURS + rng.uniform(-0.25, 0.25)
            # Heavier load wears the machine faster than the clock.
            next_age = age + step * (0.6 + load * 0.6)
            if next_age >= life:  # fails during this step: serviced, a new cycle starts
                failed_at = t + timedelta(hours=step * (life - age) / (next_age - age))
                for r in cycle:
                    r[9] = round((failed_at - r[0]).total_seconds() / 3600, 1)
                    r[8] = round((r[0] - service_at).total_seconds() / 3600, 1)
                rows.extend(tuple(r) for r in cycle)
                cycle = []
                if t >= end:
                    break
                service_at = failed_at
                life = rng.uniform(life_lo, life_hi)
                age = 0.0
            else:
                age = next_age
            t += timedelta(hours=step)
    rows.sort(key=lambda r: (r[0], r[1]))

    ids = []
    with open(os.path.join(OUT_DIR, "sensor_readings.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(
            [
                "reading_id",
                "machine_id",
                "machine_type",
                "temperature",
                "vibration",
                "pressure",
                "rpm",
                "load",
                "hours_since_service",
                "rul_hours",
                "event_time",
            ]
        )
        for i, r in enumerate(rows):
            rid = f"r{i + 1:06d}"
            w.writerow([rid, *r[1:], rfc3339(r[0])])
            ids.append((rid, r[0], r[-1]))

    # Feedback: the true remaining life of readings scored in the last ten days, known once the
    # machine failed (so reported `rul_hours` later, plus some paperwork delay).
    recent = [x for x in ids if x[1] >= START + timedelta(days=DAYS - 10)]
    chosen = sorted(rng.sample(recent, FEEDBACK), key=lambda x: x[1])
    feedback = []
    for rid, t, rul in chosen:
        known = t + timedelta(hours=rul + rng.uniform(2, 48))
        feedback.append((known, "pred-" + rid, rul))
    feedback.sort()
    with open(os.path.join(OUT_DIR, "rul_feedback.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["prediction_id", "actual_rul_hours", "recorded_at"])
        for known, pid, rul in feedback:
            w.writerow([pid, rul, rfc3339(known)])

    print(f"sensor_readings.csv: {len(rows)} rows, {MACHINES} machines")
    print(f"rul_feedback.csv: {len(feedback)} rows")


if __name__ == "__main__":
    main()
