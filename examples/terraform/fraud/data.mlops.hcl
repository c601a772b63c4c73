source "transactions" {
  format      = "csv"
  path        = "../../fraud-detection/data/transactions.csv"
  timestamp   = "event_time"
  description = "Card transactions with the fraud label known at settlement."

  schema {
    transaction_id = "string"
    account_id     = "string"
    amount         = "float"
    merchant       = "category"
    hour_of_day    = "int"
    is_fraud       = "bool"
    event_time     = "timestamp"
  }
}

source "chargebacks" {
  format      = "csv"
  path        = "../../fraud-detection/data/chargebacks.csv"
  timestamp   = "reported_at"
  description = "Delayed ground truth: chargebacks joined back to predictions."

  schema {
    prediction_id = "string"
    label         = "bool"
    reported_at   = "timestamp"
  }
}
