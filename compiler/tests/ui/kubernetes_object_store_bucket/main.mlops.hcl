mlops {
  name = "churn"

  target "kubernetes" {
    image        = "ghcr.io/acme/mlops-runtime:0.1.0"
    object_store = "s3://Acme_Models/churn"
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

endpoint "api" {
  model = training_job.churn
}

monitor "m" {
  endpoint = endpoint.api
  window   = "1h"

  drift {
    features  = ["amount"]
    method    = "psi"
    threshold = 0.2
  }
}
