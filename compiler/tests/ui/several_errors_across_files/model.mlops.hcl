mlops {
  name = "churn"
}

training_job "churn" {
  features = [feature_view.customer_activity]
  label    = source.events.columns.churned
  schedule = "0 3 * *"

  validation {
    split   = "time"
    holdout = 20
  }

  validation {
    split = "random"
  }

  gate {
    metric = "auc"
    min    = 0.8
  }

  resources {
    cpu    = 4
    memory = "8GB"
  }
}
