# The fraud-detection system (examples/fraud-detection) with one Terraform resource per mlops
# block: sources, the account entity, the feature view, the XGBoost training job, its HTTP
# endpoint, the drift monitor and the retraining policy. References between them are the other
# resource's mlops address (`mlops_source.transactions.address`), so Terraform orders them and
# the provider compiles each block with what it references.
#
# The provider keeps the system in `dir`: one generated `KIND.NAME.mlops.hcl` per resource,
# the mlops state and the data (stores, models, the serving agent). `mlops plan system` and
# `mlops status system` see the same system. Paths in blocks are relative to `dir`.

terraform {
  required_providers {
    mlops = {
      source  = "mlops/mlops"
      version = ">= 0.1.0"
    }
  }
}

variable "rounds" {
  description = "Boosting rounds of the fraud model (small for a quick example)."
  type        = number
  default     = 30
}

variable "max_depth" {
  description = "Tree depth of the fraud model: changing it trains a new model (the job is replaced)."
  type        = number
  default     = 4
}

variable "drift_method" {
  description = "Drift statistic of the monitor: psi, ks, js, chi2 or wasserstein."
  type        = string
  default     = "psi"
}

variable "drift_threshold" {
  description = "Drift above which a feature counts as drifted."
  type        = number
  default     = 0.2
}

variable "serving_address" {
  description = "Where the local serving agent listens."
  type        = string
  default     = "127.0.0.1:8080"
}

provider "mlops" {
  name = "fraud-per-kind"
  dir  = "${path.module}/system"

  target_local {
    address = var.serving_address
  }
}

resource "mlops_source" "transactions" {
  name        = "transactions"
  format      = "csv"
  path        = "../../../fraud-detection/data/transactions.csv"
  timestamp   = "event_time"
  description = "Card transactions with the fraud label known at settlement."

  schema = {
    transaction_id = "string"
    account_id     = "string"
    amount         = "float"
    merchant       = "category"
    hour_of_day    = "int"
    is_fraud       = "bool"
    event_time     = "timestamp"
  }
}

resource "mlops_source" "chargebacks" {
  name        = "chargebacks"
  format      = "csv"
  path        = "../../../fraud-detection/data/chargebacks.csv"
  timestamp   = "reported_at"
  description = "Delayed ground truth: chargebacks joined back to predictions."

  schema = {
    prediction_id = "string"
    label         = "bool"
    reported_at   = "timestamp"
  }
}

resource "mlops_entity" "account" {
  name        = "account"
  join_keys   = ["account_id"]
  description = "A card account."
}

resource "mlops_feature_view" "account_activity" {
  name     = "account_activity"
  source   = mlops_source.transactions.address
  entities = [mlops_entity.account.address]
  ttl      = "7d"

  feature {
    name   = "amount"
    column = "amount"
  }

  feature {
    name       = "log_amount"
    expression = "log1p(amount)"
  }

  feature {
    name   = "hour_of_day"
    column = "hour_of_day"
  }

  feature {
    name      = "amount_sum_24h"
    column    = "amount"
    aggregate = "sum"
    window    = "24h"
  }

  feature {
    name      = "txn_count_1h"
    column    = "amount"
    aggregate = "count"
    window    = "1h"
  }
}

resource "mlops_training_job" "fraud" {
  name     = "fraud"
  features = [mlops_feature_view.account_activity.address]
  label    = mlops_source.transactions.columns["is_fraud"]

  # A change here trains a new model: Terraform replaces the job, mlops trains the next version.
  params = {
    objective             = "binary:logistic"
    max_depth             = var.max_depth
    eta                   = 0.1
    rounds                = var.rounds
    early_stopping_rounds = 20
    subsample             = 0.8
    seed                  = 7
  }

  validation {
    split   = "time"
    holdout = 0.2
  }

  gate {
    metric = "auc"
    min    = 0.8
  }
}

resource "mlops_endpoint" "api" {
  name     = "api"
  model    = mlops_training_job.fraud.address
  replicas = 1
  timeout  = "2s"

  rollout {
    strategy = "canary"
    steps    = [10, 50, 100]
    interval = "10m"

    rollback {
      metric = "error_rate"
      above  = 0.02
    }
  }
}

resource "mlops_monitor" "fraud_health" {
  name        = "fraud_health"
  endpoint    = mlops_endpoint.api.address
  window      = "1h"
  min_samples = 500

  drift {
    features  = ["amount_sum_24h", "txn_count_1h", "amount"]
    method    = var.drift_method
    threshold = var.drift_threshold
  }

  performance {
    feedback = mlops_source.chargebacks.address
    metric   = "f1"
    min      = 0.6
  }
}

resource "mlops_retrain_policy" "fraud_auto" {
  name     = "fraud_auto"
  job      = mlops_training_job.fraud.address
  on       = [mlops_monitor.fraud_health.address]
  schedule = "0 3 * * *"
  cooldown = "6h"

  budget {
    max_runs = 3
    per      = "24h"
  }

  promote {
    compare  = "auc"
    min_gain = 0.0
    via      = mlops_endpoint.api.address
  }
}

output "model_version" {
  value = mlops_training_job.fraud.version
}

output "model_auc" {
  value = mlops_training_job.fraud.metrics["auc"]
}

output "endpoint_url" {
  value = mlops_endpoint.api.url
}

output "served_version" {
  value = mlops_endpoint.api.version
}
