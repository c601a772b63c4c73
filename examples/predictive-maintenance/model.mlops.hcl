training_job "rul" {
  features    = [feature_view.machine_health]
  label       = source.sensor_readings.columns.rul_hours
  algorithm   = "xgboost"
  params      = local.params
  description = format("Remaining useful life in hours (%s fleet).", var.environment)

  validation {
    split   = "time"
    holdout = 0.2
  }

  tuning {
    trials      = local.size.trials
    metric      = "rmse"
    parallelism = 2

    search "max_depth" {
      values = [4, 6, 8]
    }

    search "eta" {
      min   = 0.02
      max   = 0.3
      scale = "log"
    }

    search "min_child_weight" {
      min     = 1
      max     = 10
      integer = true
    }

    search "subsample" {
      min = 0.6
      max = 1
    }
  }

  gate {
    metric = "rmse"
    max    = var.max_rmse_hours
  }

  gate {
    metric = "r2"
    min    = 0.5
  }

  resources {
    cpu    = 2
    memory = "4Gi"
  }
}

endpoint "rul_api" {
  model       = training_job.rul
  timeout     = "1s"
  description = "Remaining useful life for a machine_id, from its latest features."

  autoscaling {
    min_replicas = local.size.min_replicas
    max_replicas = local.size.max_replicas
    target_cpu   = 70
  }

  rollout {
    strategy = "blue_green"

    rollback {
      metric       = "latency_p95"
      above        = 0.25
      min_requests = 200
    }
  }

  resources {
    cpu    = 1
    memory = "512Mi"
  }
}
