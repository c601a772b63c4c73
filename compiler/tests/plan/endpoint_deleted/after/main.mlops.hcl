mlops {
  name = "fraud-detection"
}

source "transactions" {
  format    = "csv"
  path      = "data/transactions.csv"
  timestamp = "event_time"

  schema {
    account_id = "string"
    amount     = "float"
    merchant   = "category"
    is_fraud   = "bool"
    event_time = "timestamp"
  }
}

source "chargebacks" {
  format    = "csv"
  path      = "data/chargebacks.csv"
  timestamp = "reported_at"

  schema {
    prediction_id = "string"
    label         = "bool"
    reported_at   = "timestamp"
  }
}

entity "account" {
  join_keys = ["account_id"]
}

feature_view "account_activity" {
  source   = source.transactions
  entities = [entity.account]
  ttl      = "7d"

  feature "amount" {
    column = "amount"
  }

  feature "amount_sum" {
    column    = "amount"
    aggregate = "sum"
    window    = "24h"
  }

  feature "txn_count" {
    column    = "amount"
    aggregate = "count"
    window    = "1h"
  }
}

training_job "fraud" {
  features = [feature_view.account_activity]
  label    = source.transactions.columns.is_fraud

  params = {
    objective = "binary:logistic"
    max_depth = 6
    eta       = 0.1
    rounds    = 200
  }

  validation {
    split   = "time"
    holdout = 0.2
  }

  gate {
    metric = "auc"
    min    = 0.85
  }
}
