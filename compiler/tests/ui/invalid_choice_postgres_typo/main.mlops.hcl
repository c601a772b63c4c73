mlops {
  name = "churn"
}

source "events" {
  format         = "postgress"
  connection_env = "CHURN_DB_URL"
  table          = "events"
  timestamp      = "event_time"

  schema {
    customer_id = "string"
    amount      = "float"
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
