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

endpoint "fraud_api" {
  model    = training_job.fraud
  replicas = 2

  rollout {
    strategy = "canary"
    steps    = [10, 50, 100]
    interval = "10m"

    rollback {
      metric = "error_rate"
      above  = 0.02
    }
  }
}

monitor "fraud_health" {
  endpoint    = endpoint.fraud_api
  window      = "1h"
  min_samples = 500

  drift {
    features  = ["amount_sum", "txn_count"]
    method    = "psi"
    threshold = 0.1
  }

  performance {
    feedback = source.chargebacks
    metric   = "f1"
    min      = 0.6
  }
}

retrain_policy "fraud_auto" {
  job      = training_job.fraud
  on       = [monitor.fraud_health]
  cooldown = "6h"

  budget {
    max_runs = 3
    per      = "24h"
  }

  promote {
    compare  = "auc"
    min_gain = 0.0
    via      = endpoint.fraud_api
  }
}
