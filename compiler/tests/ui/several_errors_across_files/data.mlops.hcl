source "events" {
  format    = "csv"
  path      = "data/events.csv"
  timestamp = "event_time"
  delimiter = ";;"

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
    window    = "24 hours"
  }

  feature "plan_last" {
    column    = "plan_name"
    aggregate = "last"
    window    = "24h"
  }
}
