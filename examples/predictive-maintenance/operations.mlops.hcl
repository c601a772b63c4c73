monitor "rul_health" {
  endpoint    = endpoint.rul_api
  window      = "6h"
  min_samples = 200

  drift {
    features  = local.drift_features
    method    = "wasserstein"
    threshold = var.drift_threshold
  }

  drift {
    features  = ["prediction"]
    method    = "ks"
    threshold = 0.2
  }

  performance {
    feedback     = source.rul_feedback
    metric       = "rmse"
    max          = var.max_rmse_hours * 1.25
    label_column = "actual_rul_hours"
  }
}

retrain_policy "rul_refresh" {
  job      = training_job.rul
  on       = [monitor.rul_health]
  schedule = "0 4 * * 1"
  cooldown = "12h"

  new_data {
    source = source.sensor_readings
    rows   = 2000
  }

  budget {
    max_runs = 2
    per      = "24h"
  }

  promote {
    compare  = "rmse"
    min_gain = 2
    via      = endpoint.rul_api
  }
}

output "endpoint_url" {
  value = endpoint.rul_api.url
}

output "model_version" {
  value = training_job.rul.version
}
