# Predictive maintenance: sensor readings of a fleet of machines in, the remaining useful life
# (hours until failure) of each machine served over HTTP, watched for drift and for its error on
# the failures that actually happened, and retrained as new readings arrive.

mlops {
  name = "predictive-maintenance"

  backend "local" {
    path = ".mlops/state"
  }

  target "local" {
    address = "127.0.0.1:8081"
  }
}

variable "environment" {
  description = "Deployment environment: sizes the endpoint and the tuning budget."
  type        = string
  default     = "dev"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "max_rmse_hours" {
  description = "Gate: a model whose holdout RMSE (hours) is above this is never promoted."
  type        = number
  default     = 120

  validation {
    condition     = var.max_rmse_hours > 0 && var.max_rmse_hours <= 500
    error_message = "max_rmse_hours must be in (0, 500]."
  }
}

variable "drift_threshold" {
  description = "Wasserstein distance (in reference standard deviations) above which a sensor counts as drifted."
  type        = number
  default     = 0.3

  validation {
    condition     = var.drift_threshold > 0
    error_message = "drift_threshold must be positive."
  }
}

variable "param_overrides" {
  description = "XGBoost parameters that replace the defaults below, e.g. { max_depth = 8 }."
  type        = map(any)
  default     = {}
}

locals {
  # Per-environment sizing; unknown environments cannot happen (see the validation above), but
  # lookup's default keeps the expression total.
  sizing = {
    dev     = { min_replicas = 1, max_replicas = 2, trials = 8 }
    staging = { min_replicas = 1, max_replicas = 4, trials = 16 }
    prod    = { min_replicas = 2, max_replicas = 10, trials = 40 }
  }
  size = lookup(local.sizing, var.environment, local.sizing["dev"])

  base_params = {
    objective             = "reg:squarederror"
    max_depth             = 6
    eta                   = 0.1
    rounds                = 300
    early_stopping_rounds = 30
    subsample             = 0.8
    colsample_bytree      = 0.8
    seed                  = 11
  }
  params = merge(local.base_params, var.param_overrides)

  # The sensors the monitor compares against the training reference.
  drift_features = ["temperature", "vibration", "vibration_max_24h", "pressure_mean_6h"]
}
