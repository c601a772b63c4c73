mlops {
  name = "churn"
}

source "events" {
  format    = "csv"
  path      = "data/events.csv"
  timestamp = "event_time"

  # Meant: refresh the data after each retrain. Creates a loop instead.
  depends_on = [training_job.churn]

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
