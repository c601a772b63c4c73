# Two kinds of watching per region: `quality` (live AUC on confirmed outcomes, and serving
# latency from the region's Prometheus) alerts people; the drift-retrain module's monitor
# triggers retraining of the region's model.

monitor "quality" {
  for_each = local.regions

  endpoint    = endpoint.scoring[each.key]
  window      = "24h"
  min_samples = 1000
  description = format("Live quality and latency of churn scoring in %s.", each.key)

  performance {
    feedback = source.churn_feedback
    metric   = "auc"
    min      = var.min_auc
  }

  prometheus "latency_p99" {
    url   = each.value.prometheus
    query = format("histogram_quantile(0.99, sum(rate(mlops_request_duration_seconds_bucket{endpoint=\"scoring\",region=\"%s\"}[5m])) by (le))", each.key)
    above = 0.4
  }
}

module "drift_retrain" {
  source   = "../../modules/drift-retrain"
  for_each = local.regions

  endpoint        = endpoint.scoring[each.key]
  job             = training_job.churn[each.key]
  drift_features  = local.drift_features
  drift_method    = "psi"
  drift_threshold = 0.2
  window          = "6h"
  min_samples     = 2000
  schedule        = each.value.schedule
  cooldown        = "12h"
  compare         = "auc"
  min_gain        = 0.005
}

output "endpoint_urls" {
  description = "Base URL of each region's scoring endpoint."
  value       = { for name, _ in local.regions : name => endpoint.scoring[name].url }
}

output "drift_status" {
  value = { for name, m in module.drift_retrain : name => m.status }
}
