mlops {
  name = "Churn"

  target "kubernetes" {
    image     = "ghcr.io/acme/mlops-runtime:0.1.0"
    namespace = "churn_scoring"
  }
}

source "events" {
  format    = "csv"
  path      = "data/events.csv"
  timestamp = "event_time"

  schema {
    customer_id = "string"
    amount      = "float"
    churned     = "bool"
  }
}

entity "customer" {
  join_keys = ["customer_id"]
}

feature_view "activity" {
  source   = source.events
  entities = [entity.customer]
  ttl      = "7d"

  feature "amount" {
    column = "amount"
  }
}

training_job "churn" {
  features = [feature_view.activity]
  label    = source.events.columns.churned

  params = {
    objective = "binary:logistic"
  }

  gate {
    metric = "auc"
    min    = 0.7
  }

  resources {
    cpu    = 2
    memory = "4Gi"
  }
}

endpoint "Scoring" {
  model = training_job.churn
}

monitor "m" {
  endpoint = endpoint.Scoring
  window   = "1h"

  drift {
    features  = ["amount"]
    method    = "psi"
    threshold = 0.2
  }
}
