endpoint "churn_api" {
  model = training_job.churn

  rollout {
    strategy = "canary"
    steps    = [10, 50, 150]
    interval = "10m"

    rollback {
      metric = "error_rate"
      above  = 0.02
    }
  }
}

monitor "churn_health" {
  endpoint = endpoint.churn_api
  window   = "1h"

  drift {
    features  = ["amount"]
    method    = "psi"
    threshold = 0.2
  }
}
