module "fraud" {
  source = "../../modules/tabular-classifier"

  features  = [feature_view.account_activity]
  label     = source.transactions.columns.is_fraud
  max_depth = 6
  replicas  = local.replicas
  min_auc   = 0.85
}

monitor "fraud_health" {
  endpoint    = module.fraud.endpoint
  window      = "1h"
  min_samples = 500

  drift {
    features  = ["amount_sum_24h", "txn_count_1h", "amount"]
    method    = "psi"
    threshold = var.drift_threshold
  }

  drift {
    features  = ["prediction"]
    method    = "ks"
    threshold = 0.2
  }

  performance {
    feedback = source.chargebacks
    metric   = "f1"
    min      = 0.6
  }
}

retrain_policy "fraud_auto" {
  job      = module.fraud.job
  on       = [monitor.fraud_health]
  schedule = "0 3 * * *"
  cooldown = "6h"

  budget {
    max_runs = 3
    per      = "24h"
  }

  promote {
    compare  = "auc"
    min_gain = 0.0
    via      = module.fraud.endpoint
  }
}

output "endpoint_url" {
  value = module.fraud.url
}
