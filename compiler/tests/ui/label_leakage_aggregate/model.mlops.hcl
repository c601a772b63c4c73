mlops {
  name = "churn"
}

training_job "churn" {
  features = [feature_view.customer_activity]
  label    = source.events.columns.churned

  params = {
    objective = "binary:logistic"
    max_depth = 6
    eta       = 0.1
    rounds    = 200
  }

  gate {
    metric = "auc"
    min    = 0.8
  }
}
