# The fraud-detection system (examples/fraud-detection), made for Terraform: the training
# parameters are variables that main.tf sets through `mlops_system.variables`; the data are the
# fraud example's.

mlops {
  name = "fraud-terraform"

  backend "local" {
    path = ".mlops/state"
  }

  target "local" {
    address = "127.0.0.1:8080"
  }
}

variable "rounds" {
  description = "Boosting rounds."
  type        = number
  default     = 200
}

variable "max_depth" {
  description = "Tree depth."
  type        = number
  default     = 6
}

variable "drift_threshold" {
  description = "PSI above which a feature counts as drifted."
  type        = number
  default     = 0.2

  validation {
    condition     = var.drift_threshold > 0 && var.drift_threshold < 1
    error_message = "drift_threshold must be in (0, 1)."
  }
}

entity "account" {
  join_keys   = ["account_id"]
  description = "A card account."
}

feature_view "account_activity" {
  source   = source.transactions
  entities = [entity.account]
  ttl      = "7d"

  feature "amount" {
    column = "amount"
  }

  feature "log_amount" {
    expression = "log1p(amount)"
  }

  feature "hour_of_day" {
    column = "hour_of_day"
  }

  feature "amount_sum_24h" {
    column    = "amount"
    aggregate = "sum"
    window    = "24h"
  }

  feature "txn_count_1h" {
    column    = "amount"
    aggregate = "count"
    window    = "1h"
  }
}

module "fraud" {
  source = "../../../modules/tabular-classifier"

  features  = [feature_view.account_activity]
  label     = source.transactions.columns.is_fraud
  max_depth = var.max_depth
  rounds    = var.rounds
  replicas  = 1
  min_auc   = 0.8
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
}

output "endpoint_url" {
  value = module.fraud.url
}
