endpoint "churn_api" {
  model    = training_job.churn
  replicas = 2
}

monitor "churn_health" {
  endpoint = endpoint.churn_api
  window   = "1h"

  drift {
    features  = ["amount", "spend_24h"]
    method    = "psi"
    threshold = 0.2
  }
}

retrain_policy "churn_auto" {
  job      = training_job.churn
  on       = [monitor.churn_health]
  cooldown = "6h"

  promote {
    compare = "auc"
    via     = endpoint.churn_api
  }
}
