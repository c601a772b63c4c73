# Fraud detection: card transactions in, a fraud score served over HTTP, watched for drift
# and retrained when the world changes.

mlops {
  name = "fraud-detection"

  backend "local" {
    path = ".mlops/state"
  }

  target "local" {
    address = "127.0.0.1:8080"
  }
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

variable "environment" {
  type    = string
  default = "dev"
}

locals {
  is_prod  = var.environment == "prod"
  replicas = local.is_prod ? 3 : 1
}
