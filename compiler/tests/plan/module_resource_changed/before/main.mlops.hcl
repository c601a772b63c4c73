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

module "fraud" {
  source = "../modules/classifier"

  features  = [feature_view.account_activity]
  label     = source.transactions.columns.is_fraud
  max_depth = 6
  min_auc   = 0.85
  replicas  = 2
}

monitor "fraud_health" {
  endpoint    = module.fraud.endpoint
  window      = "1h"
  min_samples = 500

  drift {
    features  = ["amount_sum", "txn_count"]
    method    = "psi"
    threshold = 0.1
  }
}
