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

  feature "churned_7d" {
    column    = "churned"
    aggregate = "count"
    window    = "7d"
  }
}
