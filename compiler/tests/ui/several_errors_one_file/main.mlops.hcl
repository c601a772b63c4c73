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

  feature "plan_mean_7d" {
    column    = "plan"
    aggregate = "mean"
    window    = "7d"
  }
}

training_job "churn" {
  features = [feature_view.customer_activity]
  label    = source.events.columns.churned

  params = {
    objective = "binary:logistic"
    max_depth = 6
  }

  gate {
    metric = "rmse"
    max    = 0.3
  }
}

endpoint "churn_api" {
  model = training_job.churn

  autoscaling {
    min_replicas = 5
    max_replicas = 2
    target_cpu   = 70
  }
}

monitor "churn_health" {
  endpoint = endpoint.churn_api
  window   = "1h"

  drift {
    features  = ["amount"]
    method    = "psi"
    threshold = 0.2
  }
}

retrain_policy "churn_auto" {
  job = training_job.churn

  promote {
    compare = "auc"
    via     = endpoint.churn_api
  }
}
