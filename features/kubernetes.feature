@kubernetes
Feature: Kubernetes platform
  The cluster runs a supported Kubernetes version and the platform components the tier
  names (ingress-nginx, a cert-manager ClusterIssuer, the metrics API, Prometheus, the
  cluster autoscaler); shared storage is ReadWriteMany; and the workloads of the target's
  namespace are replicated, protected by PodDisruptionBudgets, autoscaled, probed, sized
  and spread over zones as the profile requires. Everything is read from the cluster's API
  server with read-only requests, using the target's kubeconfig and context.

  @critical
  Scenario: Kubernetes server version
    When the API server's version is read
    Then the server version is at least the profile's minimum
    And the kubeconfig verifies the API server's certificate

  @high
  Scenario: ingress-nginx controller serves the namespace's Ingresses
    When the ingress-nginx controller and the namespace's Ingresses are read
    Then the ingress-nginx controller is Ready
    And every Ingress of the namespace uses an ingress-nginx IngressClass

  @high
  Scenario: A cert-manager ClusterIssuer is Ready
    When the cert-manager ClusterIssuers are read
    Then at least one ClusterIssuer is Ready

  @high
  Scenario: The resource metrics API is available
    When the metrics APIService and the node metrics are read
    Then the metrics API is Available and reports node metrics

  @high
  Scenario: Prometheus is running
    When the Prometheus pods are read
    Then at least one Prometheus pod is Ready

  @high
  Scenario: The cluster autoscaler is running
    When the cluster autoscaler and its status are read
    Then the cluster autoscaler is Ready, healthy and can add nodes

  @high
  Scenario: A ReadWriteMany StorageClass exists
    When the StorageClasses are read
    Then at least one StorageClass can provision ReadWriteMany volumes

  @high
  Scenario: Shared volumes of the workloads are ReadWriteMany and Bound
    When the volumes the namespace's Deployments share are read
    Then every shared volume is Bound and ReadWriteMany

  @high
  Scenario: Workloads run the minimum number of Ready replicas
    When the replicas of the namespace's workloads are read
    Then every workload has at least the profile's minimum of Ready replicas

  @high
  Scenario: Workloads are covered by a PodDisruptionBudget
    When the PodDisruptionBudgets of the namespace's workloads are read
    Then every workload is covered by a PodDisruptionBudget

  @high
  Scenario: Workloads are scaled by a HorizontalPodAutoscaler
    When the HorizontalPodAutoscalers of the namespace's workloads are read
    Then every workload is the target of a HorizontalPodAutoscaler

  @medium
  Scenario: Workload containers have readiness and liveness probes
    When the probes of the namespace's workload containers are read
    Then every container has a readiness and a liveness probe

  @medium
  Scenario: Workload containers declare resource requests and limits
    When the resources of the namespace's workload containers are read
    Then every container requests CPU and memory and limits memory

  @high
  Scenario: Workload pods are spread over availability zones
    When the zones of the nodes that run the namespace's pods are read
    Then every workload's Ready pods run in at least the profile's number of zones
