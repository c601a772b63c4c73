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

module "churn" {
  source = "./modules/clf"

  features  = [feature_view.customer_activity]
  label     = source.events.columns.churned
  max_depth = 6
}

monitor "churn_health" {
  endpoint = module.churn.api
  window   = "1h"

  drift {
    features  = ["amount", "spend_24h"]
    method    = "psi"
    threshold = 0.2
  }
}
