source "transactions" {
  format      = "csv"
  path        = "data/transactions.csv"
  timestamp   = "event_time"
  description = "Card transactions with the fraud label known at settlement."

  schema {
    transaction_id = "string"
    account_id     = "string"
    amount         = "float"
    merchant       = "category"
    hour_of_day    = "int"
    is_fraud       = "bool"
    event_time     = "timestamp"
  }
}

source "chargebacks" {
  format      = "csv"
  path        = "data/chargebacks.csv"
  timestamp   = "reported_at"
  description = "Delayed ground truth: chargebacks joined back to predictions."

  schema {
    prediction_id = "string"
    label         = "bool"
    reported_at   = "timestamp"
  }
}

entity "account" {
  join_keys   = ["account_id"]
  description = "A card account."
}

feature_view "account_activity" {
  source   = source.transactions
  entities = [entity.account]
  ttl      = "7d"

  feature "amount" {
    column = "amount"
  }

  feature "log_amount" {
    expression = "log1p(amount)"
  }

  feature "hour_of_day" {
    column = "hour_of_day"
  }

  feature "amount_sum_24h" {
    column    = "amount"
    aggregate = "sum"
    window    = "24h"
  }

  feature "amount_mean_7d" {
    column    = "amount"
    aggregate = "mean"
    window    = "7d"
  }

  feature "txn_count_1h" {
    column    = "amount"
    aggregate = "count"
    window    = "1h"
  }
}
