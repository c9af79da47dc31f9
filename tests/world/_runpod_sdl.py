"""The SDL subset of Runpod's GraphQL schema that the fake serves (docs/runpod.md, "GraphQL").

Why SDL text: it reads like the real schema, is validated by graphql-core exactly as a server
would, and makes "which input fields exist" reviewable in one place. Every field the official
SDK 1.12.0 sends or selects is here (a test validates its query strings against it).
"""

from __future__ import annotations

from graphql import GraphQLSchema, build_schema

__all__ = ["SCHEMA", "SDL"]

_DEPLOY_FIELDS = """
  aiApiId: String  allowedCudaVersions: [String]  cloudType: CloudTypeEnum
  compliance: [Compliance]  computeType: ComputeType  containerDiskInGb: Int
  containerRegistryAuthId: String  countryCode: String  cudaVersion: String
  dataCenterId: String  deployCost: Float  dockerArgs: String
  env: [EnvironmentVariableInput]  globalNetwork: Boolean  gpuCount: Int  gpuTypeId: String
  gpuTypeIdList: [String]  imageName: String  instanceIds: [String]  minCudaVersion: String
  minDisk: Int  minDownload: Int  minMemoryInGb: Int  minUpload: Int  minVcpuCount: Int
  name: String  networkVolumeId: String  port: Int  ports: String
  savingsPlan: SavingsPlanInput  startJupyter: Boolean  startSsh: Boolean  stopAfter: String
  supportPublicIp: Boolean  templateId: String  terminateAfter: String  volumeInGb: Int
  volumeKey: String  volumeMountPath: String
"""

SDL = f"""
scalar Void
enum CloudTypeEnum {{ SECURE COMMUNITY ALL }}
enum ComputeType {{ CPU GPU }}
enum PodStatus {{ CREATED RUNNING RESTARTING EXITED PAUSED DEAD TERMINATED }}
enum PodType {{ RESERVED INTERRUPTABLE BID BACKGROUND }}
enum Compliance {{
  GDPR HIPAA HITRUST ISO_IEC_27001 ISO_14001 PCI_DSS SOC_1_TYPE_2 SOC_2_TYPE_1 SOC_2_TYPE_2 SOC_3
}}

type Query {{
  gpuTypes(input: GpuTypeFilter): [GpuType]
  pod(input: PodFilter!): Pod
  myself: User
  dataCenters: [DataCenter]
  countryCodes: [String]
}}
type Mutation {{
  podFindAndDeployOnDemand(input: PodFindAndDeployOnDemandInput): Pod
  podRentInterruptable(input: PodRentInterruptableInput): Pod
  podStop(input: PodStopInput!): Pod
  podResume(input: PodResumeInput!): Pod
  podBidResume(input: PodBidResumeInput!): Pod
  podTerminate(input: PodTerminateInput!): Void
  updateUserSettings(input: UpdateUserSettingsInput): User
}}

input GpuTypeFilter {{ id: String ids: [String] cluster: Boolean }}
input GpuLowestPriceInput {{
  gpuCount: Int!  secureCloud: Boolean  dataCenterId: String  countryCode: String
  minCudaVersion: String  cudaVersion: String  allowedCudaVersions: [String]
  minMemoryInGb: Int  minVcpuCount: Int  minDisk: Int  totalDisk: Int  minDownload: Int
  minUpload: Int  supportPublicIp: Boolean  compliance: [Compliance]  includeAiApi: Boolean
  globalNetwork: Boolean
}}
input PodFilter {{ podId: String! }}
input EnvironmentVariableInput {{ key: String! value: String! }}
input SavingsPlanInput {{ planLength: String upfrontCost: Float }}
input PodFindAndDeployOnDemandInput {{ {_DEPLOY_FIELDS} }}
input PodRentInterruptableInput {{ bidPerGpu: Float! {_DEPLOY_FIELDS} }}
input PodStopInput {{ podId: String! incrementVersion: Boolean }}
input PodResumeInput {{
  podId: String! gpuCount: Int syncMachine: Boolean computeType: ComputeType
  allowedCudaVersions: [String]
}}
input PodBidResumeInput {{ podId: String! bidPerGpu: Float! gpuCount: Int }}
input PodTerminateInput {{ podId: String! }}
input UpdateUserSettingsInput {{ pubKey: String }}

type GpuType {{
  id: String displayName: String manufacturer: String memoryInGb: Int cudaCores: Int
  secureCloud: Boolean communityCloud: Boolean securePrice: Float communityPrice: Float
  secureSpotPrice: Float communitySpotPrice: Float oneWeekPrice: Float oneMonthPrice: Float
  threeMonthPrice: Float sixMonthPrice: Float maxGpuCount: Int maxGpuCountSecureCloud: Int
  maxGpuCountCommunityCloud: Int minPodGpuCount: Int clusterPrice: Float
  nodeGroupDatacenters: [DataCenter]
  lowestPrice(input: GpuLowestPriceInput): LowestPrice
}}
type LowestPrice {{
  gpuName: String gpuTypeId: String minimumBidPrice: Float uninterruptablePrice: Float
  minMemory: Int minVcpu: Int rentalPercentage: Float rentedCount: Int totalCount: Int
  stockStatus: String availableGpuCounts: [Int] minDownload: Int minUpload: Int minDisk: Int
  countryCode: String supportPublicIp: Boolean compliance: [Compliance]
}}
type User {{
  id: String email: String pubKey: String pods: [Pod] networkVolumes: [NetworkVolume]
}}
type NetworkVolume {{ id: String name: String size: Int dataCenterId: String }}
type DataCenter {{
  id: String name: String location: String listed: Boolean
  gpuAvailability: [GpuAvailability]
}}
type GpuAvailability {{ gpuTypeId: String displayName: String stockStatus: String }}
type Pod {{
  id: String! name: String desiredStatus: PodStatus lastStatusChange: String
  uptimeSeconds: Int costPerHr: Float adjustedCostPerHr: Float podType: PodType
  imageName: String dockerArgs: String dockerId: String env: [String] ports: String port: Int
  gpuCount: Int vcpuCount: Float memoryInGb: Float containerDiskInGb: Int volumeInGb: Float
  volumeMountPath: String machineId: String createdAt: String lastStartedAt: String
  locked: Boolean networkVolumeId: String templateId: String clusterIp: String
  machine: PodMachineInfo runtime: PodRuntime
}}
type PodMachineInfo {{
  podHostId: String gpuDisplayName: String location: String dataCenterId: String
  gpuTypeId: String secureCloud: Boolean supportPublicIp: Boolean costPerHr: Float
}}
type PodRuntime {{
  uptimeInSeconds: Int ports: [PodRuntimePorts] gpus: [PodRuntimeGpus]
  container: PodRuntimeContainer
}}
type PodRuntimePorts {{
  ip: String isIpPublic: Boolean privatePort: Int publicPort: Int type: String
}}
type PodRuntimeGpus {{ id: String gpuUtilPercent: Int memoryUtilPercent: Int }}
type PodRuntimeContainer {{ cpuPercent: Int memoryPercent: Int }}
"""

SCHEMA: GraphQLSchema = build_schema(SDL)
