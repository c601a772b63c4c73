mlops {
  name = "churn"
}

source "events" {
  format    = "csv"
  path      = "data/events.csv"
  timestamp "event_time"

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
