#!/usr/bin/env python3
"""Generates the fraud-detection example data: transactions.csv and chargebacks.csv.

Python 3 standard library only, deterministic (fixed seed): running it twice writes the same
bytes. Run it from anywhere; the files land next to this script.

transactions.csv  ~20,000 card transactions of ~300 accounts over 60 days, ~2 % fraud.
                  Legitimate spending follows each account's habits (daytime, usual merchants,
                  amounts around the account's typical ticket). Fraud comes in bursts: a stolen
                  card is used several times within an hour, mostly at night, for larger amounts
                  at merchants where goods are easy to resell. That is the signal the feature view
                  captures (hour_of_day, amount, log_amount, txn_count_1h, amount_sum_24h,
                  amount_mean_7d); some legitimate night owls, big purchases and shopping sprees
                  keep it from being trivial.
chargebacks.csv   ~500 delayed labels for predictions made on the last three weeks of traffic:
                  the prediction id, whether the transaction turned out to be fraud, and when
                  that became known (days later).
"""

import csv
import math
import os
import random
from datetime import datetime, timedelta, timezone

SEED = 20260105
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
DAYS = 60
ACCOUNTS = 300
TARGET_ROWS = 18_550
FRAUD_EPISODES = 95
CHARGEBACKS = 500

OUT_DIR = os.path.dirname(os.path.abspath(__file__))

EVERYDAY = ["grocery", "fuel", "restaurant", "coffee", "pharmacy", "transport", "clothing", "utilities"]
RISKY = ["electronics", "gift_cards", "online_marketplace", "jewelry", "crypto_exchange"]
TRAVEL = ["travel", "hotel"]

# Hourly weights of legitimate activity (index = hour of day, UTC as local time).
DAY_PROFILE = [1, 0.5, 0.3, 0.2, 0.2, 0.4, 1.2, 3, 5, 6, 6, 7, 8, 7, 6, 6, 7, 8, 8, 7, 6, 4, 3, 2]
# Fraudsters work when the cardholder sleeps.
NIGHT_PROFILE = [6, 7, 7, 6, 5, 4, 3, 2, 1.5, 1.5, 1.5, 1.5, 2, 1.5, 1.5, 1.5, 1.5, 2, 2, 2.5, 3, 4, 5, 6]


def pick_hour(rng, profile):
    return rng.choices(range(24), weights=profile)[0]


def rfc3339(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def make_accounts(rng):
    accounts = []
    for i in range(ACCOUNTS):
        accounts.append(
            {
                "id": f"acct_{i + 1:04d}",
                # Typical ticket: lognormal, median ~40.
                "mu": math.log(rng.uniform(15, 110)),
                "sigma": rng.uniform(0.45, 0.85),
                # Relative activity: a few heavy users, many light ones.
                "activity": rng.paretovariate(2.0),
                "merchants": rng.sample(EVERYDAY, 4) + ([rng.choice(RISKY)] if rng.random() < 0.3 else []),
                "night_owl": rng.random() < 0.12,
            }
        )
    return accounts


def legit_transactions(rng, accounts, count):
    total = sum(a["activity"] for a in accounts)
    rows = []
    for a in accounts:
        n = max(5, round(count * a["activity"] / total))
        profile = NIGHT_PROFILE if a["night_owl"] else DAY_PROFILE
        for _ in range(n):
            day = rng.randrange(DAYS)
            t = START + timedelta(days=day, hours=pick_hour(rng, profile), minutes=rng.randrange(60),
                                  seconds=rng.randrange(60))
            merchant = rng.choice(a["merchants"])
            amount = rng.lognormvariate(a["mu"], a["sigma"])
            if rng.random() < 0.015:  # the occasional big legitimate purchase
                merchant = rng.choice(RISKY + TRAVEL)
                amount *= rng.uniform(4, 12)
            rows.append((t, a["id"], amount, merchant, False))
        # Legitimate sprees: several purchases within an hour (a shopping trip, a conference).
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            day = rng.randrange(DAYS)
            base = START + timedelta(days=day, hours=rng.randint(10, 19), minutes=rng.randrange(60))
            for _ in range(rng.randint(3, 5)):
                t = base + timedelta(minutes=rng.randrange(55), seconds=rng.randrange(60))
                rows.append((t, a["id"], rng.lognormvariate(a["mu"], a["sigma"]), rng.choice(a["merchants"]), False))
    return rows


def fraud_transactions(rng, accounts):
    rows = []
    for _ in range(FRAUD_EPISODES):
        a = rng.choice(accounts)
        day = rng.randrange(1, DAYS)
        base = START + timedelta(days=day, hours=pick_hour(rng, NIGHT_PROFILE), minutes=rng.randrange(60))
        # Mostly bursts of several attempts within the hour; sometimes a single large hit.
        burst = 1 if rng.random() < 0.15 else rng.randint(3, 7)
        scale = math.exp(a["mu"]) * rng.uniform(1.5, 6)
        for k in range(burst):
            t = base + timedelta(minutes=rng.randrange(50) if k else 0, seconds=rng.randrange(60))
            amount = rng.lognormvariate(math.log(scale), 0.6)
            if rng.random() < 0.2:  # card testing: a tiny amount first
                amount = rng.uniform(0.5, 3)
            merchant = rng.choice(RISKY) if rng.random() < 0.8 else rng.choice(EVERYDAY)
            rows.append((t, a["id"], amount, merchant, True))
    return rows


def main():
    rng = random.Random(SEED)
    accounts = make_accounts(rng)
    fraud = fraud_transactions(rng, accounts)
    legit = legit_transactions(rng, accounts, TARGET_ROWS - len(fraud))
    rows = sorted(legit + fraud, key=lambda r: (r[0], r[1]))

    transactions = []
    with open(os.path.join(OUT_DIR, "transactions.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["transaction_id", "account_id", "amount", "merchant", "hour_of_day", "is_fraud", "event_time"])
        for i, (t, acct, amount, merchant, is_fraud) in enumerate(rows):
            tid = f"txn_{i + 1:06d}"
            amount = round(max(amount, 0.5), 2)
            w.writerow([tid, acct, f"{amount:.2f}", merchant, t.hour, "true" if is_fraud else "false", rfc3339(t)])
            transactions.append((tid, t, is_fraud))

    # Chargebacks: delayed labels for predictions served on the last 21 days of traffic. Every
    # fraud there is eventually reported; the rest are confirmed-legitimate disputes and reviews.
    recent = [x for x in transactions if x[1] >= START + timedelta(days=DAYS - 21)]
    frauds = [x for x in recent if x[2]]
    others = rng.sample([x for x in recent if not x[2]], CHARGEBACKS - len(frauds))
    feedback = []
    for tid, t, is_fraud in frauds + others:
        delay = timedelta(days=rng.randint(2, 30), hours=rng.randrange(24), minutes=rng.randrange(60))
        feedback.append((t + delay, "pred_" + tid[len("txn_"):], is_fraud))
    feedback.sort()
    with open(os.path.join(OUT_DIR, "chargebacks.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["prediction_id", "label", "reported_at"])
        for reported_at, pid, label in feedback:
            w.writerow([pid, "true" if label else "false", rfc3339(reported_at)])

    n_fraud = sum(1 for r in rows if r[4])
    print(f"transactions.csv: {len(rows)} rows, {n_fraud} fraud ({100 * n_fraud / len(rows):.1f} %)")
    print(f"chargebacks.csv: {len(feedback)} rows, {len(frauds)} fraud")


if __name__ == "__main__":
    main()
