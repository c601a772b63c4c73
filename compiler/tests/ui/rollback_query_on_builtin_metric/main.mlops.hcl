mlops {
  name = "churn"
}

source "events" {
  format    = "csv"
  path      = "data/events.csv"
  timestamp = "event_time"

  schema {
    customer_id = "string"
    amount      = "float"
    plan        = "category"
    churned     = "bool"
    event_time  = "timestamp"
  }
}

entity "customer" {
  join_keys = ["customer_id"]
}

feature_view "customer_activity" {
  source   = source.events
  entities = [entity.customer]
  ttl      = "7d"

  feature "amount" {
    column = "amount"
  }

  feature "spend_24h" {
    column    = "amount"
    aggregate = "sum"
    window    = "24h"
  }
}

training_job "churn" {
  features = [feature_view.customer_activity]
  label    = source.events.columns.churned

  params = {
    objective = "binary:logistic"
    max_depth = 6
    eta       = 0.1
    rounds    = 200
  }

  gate {
    metric = "auc"
    min    = 0.8
  }
}

endpoint "churn_api" {
  model = training_job.churn

  rollout {
    strategy = "canary"
    steps    = [10, 50, 100]
    interval = "10m"

    rollback {
      metric = "error_rate"
      query  = "up"
      above  = 0.02
    }
  }
}

monitor "churn_health" {
  endpoint = endpoint.churn_api
  window   = "1h"

  drift {
    features  = ["amount", "spend_24h"]
    method    = "psi"
    threshold = 0.2
  }
}
