source "events" {
  format    = "csv"
  path      = "data/events.csv"
  timestamp = "event_time"

  schema {
    customer_id = "string"
    amount      = "float"
    plan        = "category"
    event_time  = "timestamp"
  }
}

source "cancellations" {
  format    = "csv"
  path      = "data/cancellations.csv"
  timestamp = "cancelled_at"

  schema {
    subscription_id = "string"
    churned         = "bool"
    cancelled_at    = "timestamp"
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
