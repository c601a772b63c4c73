source "customer_activity" {
  for_each = local.regions

  format         = "postgres"
  connection_env = each.value.database_env
  query          = format("SELECT customer_id, plan, tenure_days, sessions, minutes_active, support_tickets, payment_failures, churned, snapshot_at FROM analytics.customer_daily WHERE region = '%s'", each.key)
  timestamp      = "snapshot_at"
  description    = format("Daily activity snapshots of customers in %s; `churned` is known 30 days later.", each.key)

  schema {
    customer_id      = "string"
    plan             = "category"
    tenure_days      = "int"
    sessions         = "int"
    minutes_active   = "float"
    support_tickets  = "int"
    payment_failures = "int"
    churned          = "bool"
    snapshot_at      = "timestamp"
  }
}

source "churn_feedback" {
  format         = "postgres"
  connection_env = "CHURN_FEEDBACK_DB"
  table          = "ml.churn_feedback"
  timestamp      = "confirmed_at"
  description    = "Confirmed churn (or renewal) of scored customers: prediction ids and labels only, no personal data."

  schema {
    prediction_id = "string"
    label         = "bool"
    confirmed_at  = "timestamp"
  }
}

entity "customer" {
  join_keys   = ["customer_id"]
  description = "A subscription customer."
}

feature_view "engagement" {
  for_each = local.regions

  source   = source.customer_activity[each.key]
  entities = [entity.customer]
  ttl      = "30d"

  feature "tenure_days" {
    column = "tenure_days"
  }

  feature "sessions_mean_7d" {
    column    = "sessions"
    aggregate = "mean"
    window    = "7d"
  }

  feature "minutes_sum_7d" {
    column    = "minutes_active"
    aggregate = "sum"
    window    = "7d"
  }

  feature "minutes_trend" {
    expression  = "log1p(minutes_active) - log1p(sessions)"
    description = "Minutes per session on a log scale: engaged customers stay longer per visit."
  }

  feature "support_tickets_30d" {
    column    = "support_tickets"
    aggregate = "sum"
    window    = "30d"
  }

  feature "payment_failures_30d" {
    column    = "payment_failures"
    aggregate = "sum"
    window    = "30d"
  }
}
