training_job "churn" {
  for_each = local.regions

  features    = [feature_view.engagement[each.key]]
  label       = source.customer_activity[each.key].columns.churned
  description = format("Probability that a customer in %s cancels within 30 days.", each.key)

  params = {
    objective             = "binary:logistic"
    max_depth             = 5
    eta                   = 0.05
    rounds                = 400
    early_stopping_rounds = 40
    scale_pos_weight      = 4
    seed                  = 3
  }

  validation {
    split   = "time"
    holdout = 0.2
  }

  gate {
    metric = "auc"
    min    = var.min_auc
  }

  resources {
    cpu    = 4
    memory = "8Gi"
  }
}

endpoint "scoring" {
  for_each = local.regions

  model       = training_job.churn[each.key]
  replicas    = each.value.replicas
  timeout     = "500ms"
  description = format("Churn scores for customers in %s.", each.key)

  rollout {
    strategy = "canary"
    steps    = [5, 25, 50, 100]
    interval = "15m"

    rollback {
      metric       = "error_rate"
      above        = 0.01
      min_requests = 500
    }
  }

  auth {
    type      = "bearer"
    token_env = each.value.token_env
  }

  resources {
    cpu    = 1
    memory = "1Gi"
  }
}
